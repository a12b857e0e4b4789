package main

// `valet hash-secret`: the unkeyed, versioned stored form of a client
// secret (sha256$<digest>, pkg/secret.HashUnkeyed) for declarative
// bootstrap. The secret is read from stdin, never from an argument, so that
// it stays out of the shell history and the process list.

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/valetauth/valet/pkg/secret"
)

const hashSecretUsage = `usage:
  valet hash-secret < secret.txt     print the unkeyed stored hash (sha256$...) of the secret on stdin
`

// maxSecretInput bounds what hash-secret reads.
const maxSecretInput = 4096

// runHashSecret reads one secret (the first line of stdin, without its line
// ending) and prints its stored form: 0 done, 2 usage or no secret.
func runHashSecret(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) != 0 {
		fmt.Fprint(stderr, hashSecretUsage)
		return 2
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, maxSecretInput)).ReadString('\n')
	if err != nil && err != io.EOF {
		fmt.Fprintf(stderr, "valet hash-secret: read stdin: %v\n", err)
		return 2
	}
	s := strings.TrimRight(line, "\r\n")
	if s == "" {
		fmt.Fprint(stderr, "valet hash-secret: no secret on stdin\n"+hashSecretUsage)
		return 2
	}
	if !strings.HasPrefix(s, secret.Prefix) || len(s) != secret.Len {
		fmt.Fprintf(stderr, "valet hash-secret: warning: not a secret Valet generated (%s..., %d characters); a human-chosen secret can be guessed from its hash\n", secret.Prefix, secret.Len)
	}
	fmt.Fprintf(stdout, "%s\n", secret.HashUnkeyed(s))
	return 0
}
