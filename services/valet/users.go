package main

// `valet users ...`: the issuer's local user store (the accounts of the
// login page, argon2id-hashed passwords) through the issuer's admin API
// (docs/users.md).
//
// A password never comes from the command line, where the shell history and
// the process list would keep it: it is read from stdin, prompted for twice
// without echo when stdin is a terminal, or taken as the first line of
// stdin otherwise (or always, with --password-stdin).

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/valetauth/valet/pkg/users"
)

const usersUsage = `usage:
  valet users add USERNAME [--password-stdin]      create a user; the password is read from stdin
  valet users list                                 list every user (never a password or hash)
  valet users get USERNAME
  valet users passwd USERNAME [--password-stdin] [--revoke]
                                                   reset the password; --revoke also ends every session
                                                   and token of the user (subject cut-off)
  valet users disable USERNAME                     refuse the user's logins and revoke every session and
                                                   token of the user (subject.revoked)
  valet users enable USERNAME                      allow logins again (revoked tokens stay revoked)

The password is never an argument: on a terminal it is prompted for twice without echo;
otherwise, or with --password-stdin, it is the first line of stdin:
  valet users add alice --password-stdin < alice-password.txt
`

// userJSON mirrors the admin API's user object (services/issuer UserView).
type userJSON struct {
	Username  string    `json:"username"`
	Subject   string    `json:"sub"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Revoked   bool      `json:"revoked,omitempty"`
}

// userInputJSON is the body of a create or a password reset.
type userInputJSON struct {
	Username string `json:"username,omitempty"`
	Password string `json:"password"`
	Revoke   bool   `json:"revoke,omitempty"`
}

// runUsers runs `valet users VERB ...` and returns the exit code: 0 done,
// 1 refused or failed, 2 usage (including a missing password).
func runUsers(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usersUsage+adminFlagsUsage)
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("valet users "+verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	conn := addAdminFlags(fs, getenv)
	fromStdin := fs.Bool("password-stdin", false, "")
	revoke := fs.Bool("revoke", false, "")
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		fmt.Fprintf(stderr, "valet users %s: %v\n%s", verb, err, usersUsage)
		return 2
	}
	wantPos := 1
	switch verb {
	case "list":
		wantPos = 0
	case "add", "get", "passwd", "disable", "enable":
	default:
		fmt.Fprintf(stderr, "valet users: unknown verb %q\n%s", verb, usersUsage)
		return 2
	}
	if len(pos) != wantPos {
		fmt.Fprintf(stderr, "valet users %s: want %d USERNAME argument(s), got %d\n%s", verb, wantPos, len(pos), usersUsage)
		return 2
	}
	if (*fromStdin && verb != "add" && verb != "passwd") || (*revoke && verb != "passwd") {
		fmt.Fprintf(stderr, "valet users %s: --password-stdin is for add and passwd, --revoke for passwd\n%s", verb, usersUsage)
		return 2
	}
	if wantPos == 1 && !users.ValidUsername(pos[0]) {
		fmt.Fprintf(stderr, "valet users %s: %q is not a valid username (1 to 128 bytes, no control characters or surrounding spaces)\n", verb, pos[0])
		return 2
	}
	if m := conn.missing(); len(m) > 0 {
		fmt.Fprintf(stderr, "valet users %s: missing %s\n", verb, strings.Join(m, ", "))
		return 2
	}
	var password string
	if verb == "add" || verb == "passwd" {
		if password, err = readPassword(stdin, stderr, pos[0], *fromStdin); err != nil {
			fmt.Fprintf(stderr, "valet users %s: %v\n", verb, err)
			return 2
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fail := func(err error) int {
		fmt.Fprintf(stderr, "valet users %s: %v\n", verb, err)
		return 1
	}
	var path string
	if wantPos == 1 {
		path = "/admin/users/" + url.PathEscape(pos[0])
	}
	var out userJSON
	switch verb {
	case "list":
		var res struct {
			Users []userJSON `json:"users"`
		}
		if err := conn.do(ctx, "GET", "/admin/users", nil, &res); err != nil {
			return fail(err)
		}
		if *conn.json {
			printJSON(stdout, res)
			return 0
		}
		printUsers(stdout, res.Users)
		return 0
	case "get":
		err = conn.do(ctx, "GET", path, nil, &out)
	case "add":
		err = conn.do(ctx, "POST", "/admin/users", userInputJSON{Username: pos[0], Password: password}, &out)
	case "passwd":
		err = conn.do(ctx, "POST", path+"/password", userInputJSON{Password: password, Revoke: *revoke}, &out)
	case "disable":
		err = conn.do(ctx, "POST", path+"/disable", nil, &out)
	case "enable":
		err = conn.do(ctx, "POST", path+"/enable", nil, &out)
	}
	if err != nil {
		return fail(err)
	}
	if *conn.json {
		printJSON(stdout, out)
		return 0
	}
	printUser(stdout, out)
	switch {
	case out.Revoked:
		fmt.Fprintf(stdout, "\nEvery session, refresh token and access token of %s issued until now is revoked (subject.revoked).\n", out.Username)
	case verb == "passwd":
		fmt.Fprintf(stdout, "\nPassword changed. Existing sessions and tokens of %s stay valid; `valet users passwd --revoke` or `valet users disable` ends them.\n", out.Username)
	case verb == "enable":
		fmt.Fprintf(stdout, "\n%s may sign in again; sessions and tokens revoked when the user was disabled stay revoked.\n", out.Username)
	}
	return 0
}

// readPassword returns the new password of username: prompted for twice
// without echo when stdin is a terminal (unless fromStdin), else the first
// line of stdin.
func readPassword(stdin io.Reader, stderr io.Writer, username string, fromStdin bool) (string, error) {
	f, isFile := stdin.(*os.File)
	if !fromStdin && isFile && isTerminal(f) {
		pw, err := promptPassword(f, stderr, "New password for "+username+": ")
		if err != nil {
			return "", err
		}
		again, err := promptPassword(f, stderr, "Repeat the password: ")
		if err != nil {
			return "", err
		}
		if pw != again {
			return "", errors.New("the passwords do not match")
		}
		if pw == "" {
			return "", errors.New("no password given")
		}
		return pw, nil
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, users.MaxPasswordLen+2)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read the password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("no password on stdin (pipe it, or run on a terminal to be prompted)")
	}
	return pw, nil
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// promptPassword writes prompt to w and reads one line from the terminal
// tty with echo turned off (stty), restoring echo afterwards, also on
// Ctrl-C. Where echo cannot be turned off it refuses rather than show the
// password.
func promptPassword(tty *os.File, w io.Writer, prompt string) (string, error) {
	stty := func(arg string) error {
		cmd := exec.Command("stty", arg)
		cmd.Stdin = tty
		return cmd.Run()
	}
	if err := stty("-echo"); err != nil {
		return "", errors.New("cannot turn off the terminal's echo; pipe the password with --password-stdin")
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	done := make(chan struct{})
	go func() {
		select {
		case <-sig:
			_ = stty("echo")
			fmt.Fprintln(w)
			os.Exit(130)
		case <-done:
		}
	}()
	defer func() {
		signal.Stop(sig)
		close(done)
		_ = stty("echo")
		fmt.Fprintln(w)
	}()
	fmt.Fprint(w, prompt)
	line, err := bufio.NewReader(io.LimitReader(tty, users.MaxPasswordLen+2)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read the password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func printUsers(w io.Writer, us []userJSON) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tSUB\tDISABLED\tCREATED\tUPDATED")
	for _, u := range us {
		fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\n", u.Username, u.Subject, u.Disabled, stamp(u.CreatedAt), stamp(u.UpdatedAt))
	}
	_ = tw.Flush()
}

func printUser(w io.Writer, u userJSON) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "username\t%s\n", u.Username)
	fmt.Fprintf(tw, "sub\t%s\n", u.Subject)
	fmt.Fprintf(tw, "disabled\t%t\n", u.Disabled)
	fmt.Fprintf(tw, "created_at\t%s\n", stamp(u.CreatedAt))
	fmt.Fprintf(tw, "updated_at\t%s\n", stamp(u.UpdatedAt))
	_ = tw.Flush()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
