package bolt

// The local user store (users.Store) in the same file: the embedded
// backend of pkg/users for valet dev and single-node deployments.
//
// Users live in their own bucket, "users", username -> users.User JSON,
// without expiry. The bucket is created by the first write (files written
// before it existed need no migration); a read of a file without it finds
// no user.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/users"
)

var usersBucket = []byte("users")

// Users is the user store kept in s's file (users.Store). Its steps run
// through s's committer like every other write, so they are durable once
// they return.
type Users struct{ s *Store }

var _ users.Store = (*Users)(nil)

// Users returns the user store of s's file.
func (s *Store) Users() *Users { return &Users{s: s} }

// userErr turns an error of the store's machinery into one of pkg/users:
// the outcomes of the steps below are already users sentinels; a failure of
// bbolt (store.ErrUnavailable) becomes users.ErrUnavailable; a context error
// stays as is.
func userErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrUnavailable):
		return fmt.Errorf("users: %s: %w: %v", op, users.ErrUnavailable, err)
	}
	return fmt.Errorf("users: %w", err)
}

// putUser writes u; mustExist selects Put (the user must exist) or Create
// (it must not).
func (u *Users) putUser(ctx context.Context, op string, usr users.User, mustExist bool) error {
	if usr.Username == "" {
		return fmt.Errorf("users: %s: no username", op)
	}
	if len(usr.Username) > maxKeyLen {
		return fmt.Errorf("users: %s: username of %d bytes, at most %d", op, len(usr.Username), maxKeyLen)
	}
	b, err := json.Marshal(usr)
	if err != nil {
		return err
	}
	key := []byte(usr.Username)
	return userErr(op, u.s.update(ctx, op, func(t *txn) error {
		bk, err := t.tx.CreateBucketIfNotExists(usersBucket)
		if err != nil {
			t.fail(err)
			return nil
		}
		exists := bk.Get(key) != nil
		switch {
		case mustExist && !exists:
			return fmt.Errorf("%q: %w", usr.Username, users.ErrNotFound)
		case !mustExist && exists:
			return fmt.Errorf("%q: %w", usr.Username, users.ErrAlreadyExists)
		}
		t.fail(bk.Put(key, b))
		return nil
	}))
}

// Create stores usr unless its username is taken (users.ErrAlreadyExists).
func (u *Users) Create(ctx context.Context, usr users.User) error {
	return u.putUser(ctx, "create user", usr, false)
}

// Put replaces an existing user (users.ErrNotFound if there is none).
func (u *Users) Put(ctx context.Context, usr users.User) error {
	return u.putUser(ctx, "put user", usr, true)
}

// Get returns a user or users.ErrNotFound.
func (u *Users) Get(ctx context.Context, username string) (users.User, error) {
	var usr users.User
	err := u.s.view(ctx, "get user", func(t *txn) error {
		bk := t.tx.Bucket(usersBucket)
		var v []byte
		if bk != nil {
			v = bk.Get([]byte(username))
		}
		if v == nil {
			return fmt.Errorf("%q: %w", username, users.ErrNotFound)
		}
		if err := json.Unmarshal(v, &usr); err != nil {
			t.fail(fmt.Errorf("%w: users: %v", errMalformed, err))
		}
		return nil
	})
	if err != nil {
		return users.User{}, userErr("get user", err)
	}
	return usr, nil
}

// List returns every user ordered by username (bbolt keeps keys sorted
// bytewise, which is the order of sort.Strings).
func (u *Users) List(ctx context.Context) ([]users.User, error) {
	out := []users.User{}
	err := u.s.view(ctx, "list users", func(t *txn) error {
		bk := t.tx.Bucket(usersBucket)
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(k, v []byte) error {
			var usr users.User
			if err := json.Unmarshal(v, &usr); err != nil {
				t.fail(fmt.Errorf("%w: users %q: %v", errMalformed, k, err))
				return nil
			}
			out = append(out, usr)
			return nil
		})
	})
	if err != nil {
		return nil, userErr("list users", err)
	}
	return out, nil
}
