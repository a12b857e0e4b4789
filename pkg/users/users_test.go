package users_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/testenv"
	"github.com/valetauth/valet/pkg/users"
)

var fast = users.Params{Memory: 64, Time: 1, Threads: 1}

func TestHashVerify(t *testing.T) {
	h, err := users.Hash("correct horse", fast)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q: want a PHC argon2id string", h)
	}
	for _, tc := range []struct {
		name, hash, pw string
		ok, err        bool
	}{
		{"match", h, "correct horse", true, false},
		{"mismatch", h, "wrong", false, false},
		{"not argon2id", "$argon2i$v=19$m=64,t=1,p=1$AAAA$AAAA", "x", false, true},
		{"garbage", "x", "x", false, true},
		{"huge memory", "$argon2id$v=19$m=99999999,t=1,p=1$AAAA$AAAA", "x", false, true},
		{"zero passes", "$argon2id$v=19$m=64,t=0,p=1$AAAA$AAAA", "x", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := users.Verify(tc.hash, tc.pw)
			if ok != tc.ok || (err != nil) != tc.err {
				t.Fatalf("Verify = %v, %v; want %v, error %v", ok, err, tc.ok, tc.err)
			}
		})
	}
}

func newRedis(t *testing.T) *users.Redis {
	t.Helper()
	srv := testenv.Redis(t)
	opt, err := goredis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return users.NewRedis(rdb, srv.Prefix)
}

func TestRedisAuthenticator(t *testing.T) { testAuthenticator(t, newRedis(t)) }

// testAuthenticator is the contract every backend passes, through the
// Authenticator: create, duplicate, authenticate, reset, disable, list.
func testAuthenticator(t *testing.T, st users.Store) {
	ctx := context.Background()
	a, err := users.NewAuthenticator(st, fast)
	if err != nil {
		t.Fatal(err)
	}
	u, err := a.Add(ctx, "alice@example.com", "pw-1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u.Subject, "usr_") || strings.Contains(u.PasswordHash, "pw-1") {
		t.Fatalf("user %+v", u)
	}
	if _, err := a.Add(ctx, "alice@example.com", "x"); !errors.Is(err, users.ErrAlreadyExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := a.Add(ctx, "", "x"); err == nil {
		t.Fatal("empty username accepted")
	}
	cases := []struct {
		name, user, pw string
		want           error
	}{
		{"ok", "alice@example.com", "pw-1", nil},
		{"wrong password", "alice@example.com", "pw-2", users.ErrInvalidCredentials},
		{"unknown user", "bob", "pw-1", users.ErrInvalidCredentials},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.Authenticate(ctx, tc.user, tc.pw)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if err == nil && got.Subject != u.Subject {
				t.Fatalf("subject %q, want %q", got.Subject, u.Subject)
			}
		})
	}
	if err := a.SetPassword(ctx, "alice@example.com", "pw-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, "alice@example.com", "pw-2"); err != nil {
		t.Fatalf("after reset: %v", err)
	}
	if err := a.SetDisabled(ctx, "alice@example.com", true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, "alice@example.com", "pw-2"); !errors.Is(err, users.ErrInvalidCredentials) {
		t.Fatalf("disabled: %v", err)
	}
	if err := a.SetPassword(ctx, "nobody", "x"); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("reset unknown: %v", err)
	}
	if err := st.Put(ctx, users.User{Username: "nobody"}); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("put unknown: %v", err)
	}
	if _, err := a.Add(ctx, "aaron", "pw-3"); err != nil {
		t.Fatal(err)
	}
	list, err := st.List(ctx)
	if err != nil || len(list) != 2 || list[0].Username != "aaron" || list[1].Username != "alice@example.com" || !list[1].Disabled {
		t.Fatalf("List = %v, %v", list, err)
	}
	if alist, err := a.List(ctx); err != nil || len(alist) != 2 {
		t.Fatalf("Authenticator.List = %v, %v", alist, err)
	}
	got, err := a.Get(ctx, "alice@example.com")
	if err != nil || got.Subject != u.Subject || !got.Disabled || got.UpdatedAt.Before(got.CreatedAt) {
		t.Fatalf("Authenticator.Get = %+v, %v", got, err)
	}
	if _, err := a.Get(ctx, "nobody"); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("Get unknown: %v", err)
	}
	if err := a.SetDisabled(ctx, "nobody", true); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("disable unknown: %v", err)
	}
	testNoLostUpdate(t, a)
}

// testNoLostUpdate: a password reset racing a disable never re-enables the
// user, whichever lands first.
func testNoLostUpdate(t *testing.T, a *users.Authenticator) {
	t.Helper()
	ctx := context.Background()
	if _, err := a.Add(ctx, "race", "pw-0"); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := a.SetDisabled(ctx, "race", false); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for j := range 4 {
			wg.Add(2)
			go func() { defer wg.Done(); errs <- a.SetPassword(ctx, "race", fmt.Sprintf("pw-%d-%d", i, j)) }()
			go func() { defer wg.Done(); errs <- a.SetDisabled(ctx, "race", true) }()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if u, err := a.Get(ctx, "race"); err != nil || !u.Disabled {
			t.Fatalf("round %d: a concurrent password reset re-enabled the user (%+v, %v)", i, u.Disabled, err)
		}
	}
}

func TestValidUsernameAndPassword(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"alice", true}, {"alice@example.com", true}, {"Jean Dupont", true}, {"", false},
		{" alice", false}, {"alice ", false}, {"a\nb", false}, {"a\x00b", false}, {"a\x7fb", false},
		{"\xff", false}, {strings.Repeat("a", 128), true}, {strings.Repeat("a", 129), false},
	} {
		if got := users.ValidUsername(tc.name); got != tc.ok {
			t.Errorf("ValidUsername(%q) = %v", tc.name, got)
		}
	}
	for _, tc := range []struct {
		pw string
		ok bool
	}{
		{"", false}, {"1234567", false}, {"12345678", true}, {strings.Repeat("p", users.MaxPasswordLen), true},
		{strings.Repeat("p", users.MaxPasswordLen+1), false}, {"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", false},
	} {
		if err := users.ValidPassword(tc.pw); (err == nil) != tc.ok {
			t.Errorf("ValidPassword(%d bytes) = %v", len(tc.pw), err)
		}
	}
}
