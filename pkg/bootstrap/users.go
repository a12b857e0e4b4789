package bootstrap

import (
	"context"
	"errors"
	"fmt"

	"github.com/valetauth/valet/pkg/token"
	"github.com/valetauth/valet/pkg/users"
)

// user creates u, or rewrites the stored account when its password no longer matches the
// declared one or its disabled flag differs. The subject of an existing account is kept: it is
// the stable sub of its tokens.
func (a *applier) user(ctx context.Context, u User) (Result, error) {
	res := Result{Kind: KindUser, ID: u.Username, Key: u.Key}
	for range casAttempts {
		cur, err := a.Users.Get(ctx, u.Username)
		if errors.Is(err, users.ErrNotFound) {
			h, err := a.passwordHash(u.Password)
			if err != nil {
				return res, err
			}
			id, err := token.NewID()
			if err != nil {
				return res, err
			}
			now := a.Now().UTC()
			err = a.Users.Create(ctx, users.User{Username: u.Username, Subject: "usr_" + id, PasswordHash: h,
				Disabled: u.Disabled, CreatedAt: now, UpdatedAt: now})
			if errors.Is(err, users.ErrAlreadyExists) {
				continue // another replica created it: compare with theirs
			}
			if err != nil {
				return res, fmt.Errorf("create: %w", err)
			}
			res.Outcome = Created
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("read: %w", err)
		}
		var drifted []string
		newHash := ""
		if !a.passwordMatches(cur.PasswordHash, u.Password) {
			drifted = append(drifted, "password")
			if newHash, err = a.passwordHash(u.Password); err != nil {
				return res, err
			}
		}
		if cur.Disabled != u.Disabled {
			drifted = append(drifted, "disabled")
		}
		if len(drifted) == 0 {
			res.Outcome = Unchanged
			return res, nil
		}
		now := a.Now().UTC()
		change := func(s *users.User) error {
			if newHash != "" {
				s.PasswordHash = newHash
			} else if s.PasswordHash != cur.PasswordHash {
				return errChangedMeanwhile // the password checked above is no longer the stored one
			}
			s.Disabled, s.UpdatedAt = u.Disabled, now
			return nil
		}
		err = a.updateUser(ctx, cur, change)
		switch {
		case errors.Is(err, users.ErrNotFound), errors.Is(err, errChangedMeanwhile):
			continue // deleted or changed meanwhile: look again
		case err != nil:
			return res, fmt.Errorf("update: %w", err)
		}
		res.Outcome, res.Drifted = Drifted, drifted
		return res, nil
	}
	return res, fmt.Errorf("changed concurrently %d times in a row; giving up", casAttempts)
}

// passwordHash returns the stored form of a declared password: the declared argon2id hash as is,
// or the hash of the password read from a reference.
func (a *applier) passwordHash(c Credential) (string, error) {
	if c.IsHash() {
		return string(c.hash), nil
	}
	h, err := users.Hash(c.clear, a.params)
	if err != nil {
		return "", fmt.Errorf("hash the password: %w", err)
	}
	return h, nil
}

// passwordMatches reports whether stored is the declared password: the same string for a declared
// hash, a successful argon2id verification for a password read from a reference. A stored hash
// that cannot be parsed never matches, so it is replaced.
func (a *applier) passwordMatches(stored string, c Credential) bool {
	if c.IsHash() {
		return stored == string(c.hash)
	}
	ok, err := users.Verify(stored, c.clear)
	return err == nil && ok
}

// errChangedMeanwhile makes user read the account again.
var errChangedMeanwhile = errors.New("bootstrap: user changed meanwhile")

// userUpdater is a user store that changes a user atomically (users.Updater): the Redis store,
// which several replicas share, is one.
type userUpdater interface {
	Update(ctx context.Context, username string, fn func(*users.User) error) (users.User, error)
}

// updateUser applies change to the stored account: atomically when the store can, else as a
// read-modify-write from cur through Put (the embedded store, which one process owns).
func (a *applier) updateUser(ctx context.Context, cur users.User, change func(*users.User) error) error {
	if up, ok := a.Users.(userUpdater); ok {
		_, err := up.Update(ctx, cur.Username, change)
		return err
	}
	next := cur
	if err := change(&next); err != nil {
		return err
	}
	return a.Users.Put(ctx, next)
}
