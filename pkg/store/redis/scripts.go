package redis

// The Lua scripts of the grant and revocation stores, and how their replies
// are read. Each script is one atomic step; common.lua is prepended to every
// one of them. The .lua files comment each KEYS and ARGV slot.

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/store"
)

var (
	//go:embed common.lua
	luaCommon string
	//go:embed code_create.lua
	luaCodeCreate string
	//go:embed code_redeem.lua
	luaCodeRedeem string
	//go:embed family_create.lua
	luaFamilyCreate string
	//go:embed family_rotate.lua
	luaFamilyRotate string
	//go:embed device_create.lua
	luaDeviceCreate string
	//go:embed device_decide.lua
	luaDeviceDecide string
	//go:embed device_poll.lua
	luaDevicePoll string
	//go:embed revoke_token.lua
	luaRevokeToken string
	//go:embed revoke_family.lua
	luaRevokeFamily string
	//go:embed revoke_cutoff.lua
	luaRevokeCutoff string
	//go:embed outbox_pending.lua
	luaOutboxPending string
)

// The scripts, run with Run (EVALSHA, EVAL when Redis lost its script cache).
var (
	codeCreateScript    = goredis.NewScript(luaCommon + luaCodeCreate)
	codeRedeemScript    = goredis.NewScript(luaCommon + luaCodeRedeem)
	familyCreateScript  = goredis.NewScript(luaCommon + luaFamilyCreate)
	familyRotateScript  = goredis.NewScript(luaCommon + luaFamilyRotate)
	deviceCreateScript  = goredis.NewScript(luaCommon + luaDeviceCreate)
	deviceDecideScript  = goredis.NewScript(luaCommon + luaDeviceDecide)
	devicePollScript    = goredis.NewScript(luaCommon + luaDevicePoll)
	revokeTokenScript   = goredis.NewScript(luaCommon + luaRevokeToken)
	revokeFamilyScript  = goredis.NewScript(luaCommon + luaRevokeFamily)
	revokeCutoffScript  = goredis.NewScript(luaCommon + luaRevokeCutoff)
	outboxPendingScript = goredis.NewScript(luaCommon + luaOutboxPending)
)

// Statuses, the first element of every script reply.
const (
	statusOK       = "OK"
	statusStale    = "STALE"    // the cut-off key hints were wrong; nothing was written
	statusGrace    = "GRACE"    // family_rotate: a grace replay
	statusPending  = "PENDING"  // device_poll
	statusSlowDown = "SLOWDOWN" // device_poll
	statusDenied   = "DENIED"   // device_poll
)

// statusErrs maps the failure statuses to the store's sentinels.
var statusErrs = map[string]error{
	"NOTFOUND": store.ErrNotFound,
	"EXPIRED":  store.ErrExpired,
	"REVOKED":  store.ErrRevoked,
	"REUSED":   store.ErrReused,
	"MISMATCH": store.ErrClientMismatch,
	"EXISTS":   store.ErrAlreadyExists,
	"CONFLICT": store.ErrConflict,
	"SCOPE":    store.ErrInvalidScope,
}

// maxStaleRetries bounds the reruns of a redemption whose cut-off key hints
// were wrong: one rerun with the record's own subject always suffices, unless
// the record changed in between.
const maxStaleRetries = 3

// run runs a script and types its reply at once: a status and string values.
// A context error is returned as is; any other failure, a script error or a
// reply of an unexpected shape is store.ErrUnavailable. A failure status is
// returned as its sentinel.
func (s *Store) run(ctx context.Context, op string, sc *goredis.Script, keys []string, args ...any) (status string, vals []string, err error) {
	if err := ctx.Err(); err != nil {
		return "", nil, fmt.Errorf("%s: %w", op, err)
	}
	res, err := sc.Run(ctx, s.rdb, keys, args...).StringSlice()
	if err != nil {
		return "", nil, wrap(op, err)
	}
	if len(res) == 0 {
		return "", nil, fmt.Errorf("%s: %w: empty script reply", op, store.ErrUnavailable)
	}
	if e, ok := statusErrs[res[0]]; ok {
		return res[0], nil, fmt.Errorf("%s: %w", op, e)
	}
	return res[0], res[1:], nil
}

// unexpected is the error for a reply a script never gives.
func unexpected(op, status string, vals []string) error {
	return fmt.Errorf("%s: %w: unexpected script reply %q with %d values", op, store.ErrUnavailable, status, len(vals))
}

// fields reads a record returned by a script in the order of one of the
// field lists of common.lua.
type fields struct {
	v   []string
	err error
}

func (f *fields) str(i int) string {
	if i >= len(f.v) {
		f.err = fmt.Errorf("reply has %d fields, want more than %d", len(f.v), i)
		return ""
	}
	return f.v[i]
}

// int reads a decimal integer; an empty field is 0.
func (f *fields) int(i int) int64 {
	v := f.str(i)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		fl, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil {
			f.err = fmt.Errorf("field %d: %q is not a number", i, v)
			return 0
		}
		n = int64(fl)
	}
	return n
}

// time reads Unix milliseconds; an empty field is the zero time.
func (f *fields) time(i int) time.Time {
	if f.str(i) == "" {
		return time.Time{}
	}
	return time.UnixMilli(f.int(i))
}

func (f *fields) dur(i int) time.Duration { return time.Duration(f.int(i)) * time.Millisecond }

func (f *fields) hash(i int) store.Hash {
	var h store.Hash
	v := f.str(i)
	if v != "" && len(v) != len(h) {
		f.err = fmt.Errorf("field %d: hash of %d bytes", i, len(v))
	}
	copy(h[:], v)
	return h
}

// check returns the first decoding error as store.ErrUnavailable: the store
// cannot answer, and must not guess.
func (f *fields) check(op string) error {
	if f.err != nil {
		return fmt.Errorf("%s: %w: malformed record: %v", op, store.ErrUnavailable, f.err)
	}
	return nil
}

// msText is t in Unix milliseconds as text, or "" for the zero time.
func msText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(ms(t), 10)
}

// durText is d in milliseconds as text.
func durText(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
