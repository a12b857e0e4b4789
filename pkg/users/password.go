package users

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/valetauth/valet/pkg/token"
)

// Params are argon2id's cost parameters.
type Params struct {
	// Memory in KiB, Time iterations, Threads lanes.
	Memory  uint32
	Time    uint32
	Threads uint8
}

// DefaultParams are RFC 9106 §4's second recommended option (64 MiB, three
// passes, four lanes): memory-hard and about 50–100 ms on a server core.
var DefaultParams = Params{Memory: 64 << 10, Time: 3, Threads: 4}

const (
	saltLen = 16
	keyLen  = 32
	// MaxPasswordLen bounds what is hashed, so a huge body costs nothing.
	MaxPasswordLen = 1024
)

var b64 = base64.RawStdEncoding

// Hash returns the PHC string of password under p:
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>.
func Hash(password string, p Params) (string, error) {
	if len(password) > MaxPasswordLen {
		return "", fmt.Errorf("users: password longer than %d bytes", MaxPasswordLen)
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("users: read salt: %w", err)
	}
	k := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(k)), nil
}

// maxMemory bounds the memory parameter accepted from a stored hash (1 GiB).
const maxMemory = 1 << 20

// Verify reports whether password matches the PHC string encoded, in
// constant time. A malformed hash is an error, never a match.
func Verify(encoded, password string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, errors.New("users: not an argon2id hash")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, errors.New("users: unsupported argon2 version")
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil ||
		p.Memory == 0 || p.Memory > maxMemory || p.Time == 0 || p.Threads == 0 {
		return false, errors.New("users: bad argon2 parameters")
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, errors.New("users: bad salt")
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, errors.New("users: bad hash")
	}
	if len(password) > MaxPasswordLen {
		return false, nil
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// Authenticator checks usernames and passwords against a Store.
type Authenticator struct {
	store  Store
	params Params
	dummy  string
	now    func() time.Time
}

// NewAuthenticator returns an Authenticator hashing new passwords with p.
func NewAuthenticator(s Store, p Params) (*Authenticator, error) {
	if s == nil {
		return nil, errors.New("users: a store is required")
	}
	d, err := Hash("valet dummy password", p)
	if err != nil {
		return nil, err
	}
	return &Authenticator{store: s, params: p, dummy: d, now: time.Now}, nil
}

// Authenticate returns the user whose password matches, or
// ErrInvalidCredentials for an unknown user, a wrong password or a disabled
// account (an unknown user still costs one hash, so timing tells nothing),
// or an error matching ErrUnavailable.
func (a *Authenticator) Authenticate(ctx context.Context, username, password string) (User, error) {
	u, err := a.store.Get(ctx, username)
	switch {
	case errors.Is(err, ErrNotFound):
		_, _ = Verify(a.dummy, password)
		return User{}, ErrInvalidCredentials
	case err != nil:
		return User{}, err
	}
	ok, err := Verify(u.PasswordHash, password)
	if err != nil || !ok || u.Disabled {
		return User{}, ErrInvalidCredentials
	}
	return u, nil
}

// Add creates a user with a new random subject and password's hash.
func (a *Authenticator) Add(ctx context.Context, username, password string) (User, error) {
	if !ValidUsername(username) {
		return User{}, errors.New("users: a username is 1 to 128 printable characters")
	}
	h, err := Hash(password, a.params)
	if err != nil {
		return User{}, err
	}
	id, err := token.NewID()
	if err != nil {
		return User{}, err
	}
	now := a.now().UTC()
	u := User{Username: username, Subject: "usr_" + id, PasswordHash: h, CreatedAt: now, UpdatedAt: now}
	return u, a.store.Create(ctx, u)
}

// SetPassword replaces a user's password hash.
func (a *Authenticator) SetPassword(ctx context.Context, username, password string) error {
	u, err := a.store.Get(ctx, username)
	if err != nil {
		return err
	}
	if u.PasswordHash, err = Hash(password, a.params); err != nil {
		return err
	}
	u.UpdatedAt = a.now().UTC()
	return a.store.Put(ctx, u)
}

// SetDisabled disables or re-enables a user.
func (a *Authenticator) SetDisabled(ctx context.Context, username string, disabled bool) error {
	u, err := a.store.Get(ctx, username)
	if err != nil {
		return err
	}
	u.Disabled, u.UpdatedAt = disabled, a.now().UTC()
	return a.store.Put(ctx, u)
}

// ValidUsername reports whether s is 1 to 128 bytes with no control
// characters.
func ValidUsername(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
