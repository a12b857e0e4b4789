package users

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"

	goredis "github.com/redis/go-redis/v9"
)

// Redis keeps users in Redis: one string per user at <prefix>user:<escaped
// username> holding its JSON, and the set <prefix>users of usernames. The
// keys carry no hash tag: each operation touches one key, or (create) two
// keys written with separate commands, the set being only an index.
type Redis struct {
	rdb    goredis.UniversalClient
	prefix string
}

var (
	_ Store   = (*Redis)(nil)
	_ Updater = (*Redis)(nil)
)

// NewRedis returns a Store in rdb under prefix (the token store's prefix,
// e.g. "valet:").
func NewRedis(rdb goredis.UniversalClient, prefix string) *Redis {
	return &Redis{rdb: rdb, prefix: prefix}
}

func (r *Redis) key(username string) string { return r.prefix + "user:" + url.PathEscape(username) }
func (r *Redis) index() string              { return r.prefix + "users" }

func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, goredis.Nil):
		return fmt.Errorf("users: %s: %w", op, ErrNotFound)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("users: %s: %w", op, err)
	}
	return fmt.Errorf("users: %s: %w: %v", op, ErrUnavailable, err)
}

// Create stores u unless its username is taken (SET NX).
func (r *Redis) Create(ctx context.Context, u User) error {
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	ok, err := r.rdb.SetNX(ctx, r.key(u.Username), b, 0).Result()
	if err != nil {
		return wrap("create", err)
	}
	if !ok {
		return fmt.Errorf("users: create %q: %w", u.Username, ErrAlreadyExists)
	}
	return wrap("index", r.rdb.SAdd(ctx, r.index(), u.Username).Err())
}

// Get returns a user or ErrNotFound.
func (r *Redis) Get(ctx context.Context, username string) (User, error) {
	b, err := r.rdb.Get(ctx, r.key(username)).Bytes()
	if err != nil {
		return User{}, wrap("get", err)
	}
	var u User
	if err := json.Unmarshal(b, &u); err != nil {
		return User{}, fmt.Errorf("users: decode %q: %w", username, err)
	}
	return u, nil
}

// Put replaces an existing user (SET XX).
func (r *Redis) Put(ctx context.Context, u User) error {
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	ok, err := r.rdb.SetXX(ctx, r.key(u.Username), b, goredis.KeepTTL).Result()
	if err != nil {
		return wrap("put", err)
	}
	if !ok {
		return fmt.Errorf("users: put %q: %w", u.Username, ErrNotFound)
	}
	return nil
}

// List returns every user ordered by username.
func (r *Redis) List(ctx context.Context) ([]User, error) {
	names, err := r.rdb.SMembers(ctx, r.index()).Result()
	if err != nil {
		return nil, wrap("list", err)
	}
	sort.Strings(names)
	out := make([]User, 0, len(names))
	for _, n := range names {
		u, err := r.Get(ctx, n)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// casScript: KEYS[1] the user's key. ARGV[1] the JSON read, ARGV[2] the
// JSON to store. Stores ARGV[2] (keeping any TTL) only if the key still
// holds ARGV[1]: 1 stored, 0 changed meanwhile, -1 gone.
var casScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then return -1 end
if cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
`)

// updateAttempts bounds Update's retries under contention.
const updateAttempts = 10

// Update changes a user atomically: compare-and-set on the stored JSON.
func (r *Redis) Update(ctx context.Context, username string, fn func(*User) error) (User, error) {
	for range updateAttempts {
		cur, err := r.rdb.Get(ctx, r.key(username)).Bytes()
		if err != nil {
			return User{}, wrap("update", err)
		}
		var u User
		if err := json.Unmarshal(cur, &u); err != nil {
			return User{}, fmt.Errorf("users: decode %q: %w", username, err)
		}
		if err := fn(&u); err != nil {
			return User{}, err
		}
		if u.Username != username {
			return User{}, fmt.Errorf("users: update %q: the username cannot change", username)
		}
		next, err := json.Marshal(u)
		if err != nil {
			return User{}, err
		}
		n, err := casScript.Run(ctx, r.rdb, []string{r.key(username)}, cur, next).Int64()
		switch {
		case err != nil:
			return User{}, wrap("update", err)
		case n == 1:
			return u, nil
		case n == -1:
			return User{}, fmt.Errorf("users: update %q: %w", username, ErrNotFound)
		}
	}
	return User{}, fmt.Errorf("users: update %q: %w: too much contention", username, ErrUnavailable)
}
