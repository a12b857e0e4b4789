package users

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

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

// Authenticator checks usernames and passwords against a Store, and is the
// one place that changes users (the admin API, valet dev's seeding).
type Authenticator struct {
	store  Store
	params Params
	dummy  string
	now    func() time.Time
	// mu serialises read-modify-write on stores without Updater; that is
	// enough only for a store one process owns (the embedded bbolt file).
	mu sync.Mutex
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

// Get returns the user (with its password hash: callers that show users
// must drop it), or ErrNotFound.
func (a *Authenticator) Get(ctx context.Context, username string) (User, error) {
	return a.store.Get(ctx, username)
}

// List returns every user ordered by username (with password hashes).
func (a *Authenticator) List(ctx context.Context) ([]User, error) {
	return a.store.List(ctx)
}

// SetPassword replaces a user's password hash. The hash is computed before
// the user is read, so that the change itself is one short atomic step.
func (a *Authenticator) SetPassword(ctx context.Context, username, password string) error {
	h, err := Hash(password, a.params)
	if err != nil {
		return err
	}
	_, err = a.modify(ctx, username, func(u *User) { u.PasswordHash = h })
	return err
}

// SetDisabled disables or re-enables a user. Disabling refuses every later
// password login; ending what the user is already signed in to is the
// caller's job (a subject cut-off through pkg/revoke).
func (a *Authenticator) SetDisabled(ctx context.Context, username string, disabled bool) error {
	_, err := a.modify(ctx, username, func(u *User) { u.Disabled = disabled })
	return err
}

// modify applies fn to the stored user without losing a concurrent change
// (a password reset must never re-enable a user disabled meanwhile):
// atomically when the store is an Updater, else under a.mu.
func (a *Authenticator) modify(ctx context.Context, username string, fn func(*User)) (User, error) {
	now := a.now().UTC()
	change := func(u *User) error { fn(u); u.UpdatedAt = now; return nil }
	if up, ok := a.store.(Updater); ok {
		return up.Update(ctx, username, change)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	u, err := a.store.Get(ctx, username)
	if err != nil {
		return User{}, err
	}
	_ = change(&u)
	return u, a.store.Put(ctx, u)
}

// MinPasswordLen is the shortest password an administrator may set
// (NIST SP 800-63B §3.1.1.2); Add and SetPassword themselves take any
// password up to MaxPasswordLen, for seeding and tests.
const MinPasswordLen = 8

// ValidPassword reports why password cannot be set, or nil: MinPasswordLen
// to MaxPasswordLen bytes of UTF-8.
func ValidPassword(password string) error {
	switch {
	case len(password) < MinPasswordLen:
		return fmt.Errorf("users: a password is at least %d bytes", MinPasswordLen)
	case len(password) > MaxPasswordLen:
		return fmt.Errorf("users: a password is at most %d bytes", MaxPasswordLen)
	case !utf8.ValidString(password):
		return errors.New("users: a password is UTF-8 text")
	}
	return nil
}

// ValidUsername reports whether s is 1 to 128 bytes of UTF-8 with no
// control characters and no surrounding spaces (the login page trims them,
// so such a user could never sign in).
func ValidUsername(s string) bool {
	if s == "" || len(s) > 128 || !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
