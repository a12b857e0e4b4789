package testenv

import (
	"crypto/rand"
	"encoding/hex"
)

// newPrefix returns a short random token made of [a-z0-9] only, so that it is
// valid as a Redis key part, a NATS subject token and a JetStream stream name.
func newPrefix() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("testenv: crypto/rand failed: " + err.Error())
	}
	return "t" + hex.EncodeToString(b[:])
}
