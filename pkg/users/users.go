// Package users is the issuer's local user store: accounts with argon2id
// password hashes (RFC 9106), behind a narrow interface so that an upstream
// OIDC or LDAP login can replace it later.
//
// Backends: Redis (this package, keys under the store's prefix) and the
// embedded bbolt store ((*bolt.Store).Users in pkg/store/bolt, a bucket of
// the same file).
package users

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors; backends wrap them with %w.
var (
	// ErrNotFound: no such user.
	ErrNotFound = errors.New("users: not found")
	// ErrAlreadyExists: the username is taken.
	ErrAlreadyExists = errors.New("users: already exists")
	// ErrInvalidCredentials: unknown user, wrong password or disabled
	// account; deliberately one error so that a login page cannot tell them
	// apart.
	ErrInvalidCredentials = errors.New("users: invalid credentials")
	// ErrUnavailable: the backend cannot be reached.
	ErrUnavailable = errors.New("users: unavailable")
)

// User is one account. PasswordHash is an argon2id PHC string; the password
// itself is never stored.
type User struct {
	// Username is what the person types; unique.
	Username string `json:"username"`
	// Subject is the stable, opaque id used as the access token's sub; it
	// survives renames and password resets.
	Subject      string    `json:"sub"`
	PasswordHash string    `json:"password_hash"`
	Disabled     bool      `json:"disabled,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Store keeps users. Every backend implements it.
type Store interface {
	// Create stores u; ErrAlreadyExists if the username is taken.
	Create(ctx context.Context, u User) error
	// Get returns the user or ErrNotFound.
	Get(ctx context.Context, username string) (User, error)
	// Put replaces an existing user (password reset, disable);
	// ErrNotFound if there is none.
	Put(ctx context.Context, u User) error
	// List returns every user ordered by username.
	List(ctx context.Context) ([]User, error)
}

// Updater is implemented by stores that can change a user atomically:
// several issuer replicas (or admin calls) may change one user at once,
// and a read-modify-write through Get and Put could lose one of the
// changes.
type Updater interface {
	// Update reads the user, applies fn and stores the result unless the
	// user changed in between (then it reads again and retries). It returns
	// the stored user, ErrNotFound, or fn's error. fn must not change the
	// username.
	Update(ctx context.Context, username string, fn func(*User) error) (User, error)
}
