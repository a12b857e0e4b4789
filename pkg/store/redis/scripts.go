package redis

// The Lua scripts of the grant and revocation stores, and how their replies
// are read. Each script is one atomic step; common.lua is prepended to every
// one of them. The .lua files comment each KEYS and ARGV slot.

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
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
	//go:embed grant_kill.lua
	luaGrantKill string
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
	//go:embed outbox_register.lua
	luaOutboxRegister string
	//go:embed outbox_read.lua
	luaOutboxRead string
	//go:embed outbox_forget.lua
	luaOutboxForget string
)

// luaConstants are the constants common.lua and the scripts read, written
// from the Go values so that both sides agree.
var luaConstants = fmt.Sprintf("local SUPERSEDED_KEPT = %d\nlocal OUTBOX_CLOSED = %q\nlocal OUTBOX_MAX_AGE = %d\n",
	keepSuperseded, outboxClosedField, registrationMaxAge.Milliseconds())

func newScript(body string) *goredis.Script {
	return goredis.NewScript(luaConstants + luaCommon + body)
}

// The scripts, run with EVALSHA, and EVAL when Redis lost its script cache.
var (
	codeCreateScript     = newScript(luaCodeCreate)
	codeRedeemScript     = newScript(luaCodeRedeem)
	familyCreateScript   = newScript(luaFamilyCreate)
	familyRotateScript   = newScript(luaFamilyRotate)
	grantKillScript      = newScript(luaGrantKill)
	deviceCreateScript   = newScript(luaDeviceCreate)
	deviceDecideScript   = newScript(luaDeviceDecide)
	devicePollScript     = newScript(luaDevicePoll)
	revokeTokenScript    = newScript(luaRevokeToken)
	revokeFamilyScript   = newScript(luaRevokeFamily)
	revokeCutoffScript   = newScript(luaRevokeCutoff)
	outboxRegisterScript = newScript(luaOutboxRegister)
	outboxReadScript     = newScript(luaOutboxRead)
	outboxForgetScript   = newScript(luaOutboxForget)
)

// Statuses, the first element of every script reply.
const (
	statusOK       = "OK"
	statusIndex    = "INDEX"    // the outbox shard must be registered first (outbox.go)
	statusGrace    = "GRACE"    // family_rotate: a grace replay
	statusPending  = "PENDING"  // device_poll
	statusSlowDown = "SLOWDOWN" // device_poll
	statusDenied   = "DENIED"   // device_poll
	statusClosed   = "CLOSED"   // outbox_read
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

// maxIndexRetries bounds the reruns of a step whose outbox shard had to be
// registered (again): one registration suffices unless the relay closes the
// shard in between, or the step took longer than registrationMaxAge.
const maxIndexRetries = 3

// evalCmd returns the EVALSHA of sc, not sent yet: it goes into a round
// trip with the reads it needs (roundTrip).
// Its reply is read straight into strings: every script answers an array of
// strings.
func evalCmd(ctx context.Context, sc *goredis.Script, keys []string, args ...any) *goredis.StringSliceCmd {
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, "evalsha", sc.Hash(), len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	a = append(a, args...)
	return goredis.NewStringSliceCmd(ctx, a...)
}

// isNoScript reports whether err is Redis's NOSCRIPT: the script was not in
// the server's cache (a restart, SCRIPT FLUSH, a new Cluster node) and did not
// run. It looks at the message first: the common errors (none, redis.Nil)
// cost nothing then.
func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") && goredis.HasErrorPrefix(err, "NOSCRIPT")
}

// scriptsByHash finds a script from its EVALSHA, to load it after NOSCRIPT.
var scriptsByHash = func() map[string]*goredis.Script {
	m := map[string]*goredis.Script{}
	for _, sc := range []*goredis.Script{codeCreateScript, codeRedeemScript, familyCreateScript, familyRotateScript,
		grantKillScript, deviceCreateScript, deviceDecideScript, devicePollScript, revokeTokenScript,
		revokeFamilyScript, revokeCutoffScript, outboxRegisterScript, outboxReadScript, outboxForgetScript} {
		m[sc.Hash()] = sc
	}
	return m
}()

// roundTrip sends cmds in one round trip (in order, on one connection, on a
// single Redis; grouped by node on Cluster), through the batcher when there
// is one. An EVALSHA that meets NOSCRIPT did not run (a restart, SCRIPT
// FLUSH, a new Cluster node): the script is loaded (on every node of a
// Cluster) and the round trip sent again, reads included, so that they stay
// as fresh as the script's run. It returns an error only when nothing could
// be sent (context done, store closed); each command carries its own error.
func (s *Store) roundTrip(ctx context.Context, cmds ...goredis.Cmder) error {
	if err := s.send(ctx, cmds); err != nil {
		return err
	}
	missing := false
	for _, c := range cmds {
		if isNoScript(c.Err()) {
			missing = true
			if sc := scriptsByHash[fmt.Sprint(c.Args()[1])]; sc != nil {
				if err := sc.Load(ctx, s.rdb).Err(); err != nil {
					// The command keeps its NOSCRIPT error: unavailable.
					return ctx.Err()
				}
			}
		}
	}
	if !missing {
		return nil
	}
	for _, c := range cmds {
		c.SetErr(nil)
	}
	return s.send(ctx, cmds)
}

// send is one round trip of cmds, batched with other callers' when the
// batcher runs.
func (s *Store) send(ctx context.Context, cmds []goredis.Cmder) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.batch != nil {
		return s.batch.do(ctx, cmds)
	}
	if len(cmds) == 1 {
		_ = s.rdb.Process(ctx, cmds[0])
		return nil
	}
	_, _ = s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, c := range cmds {
			_ = p.Process(ctx, c)
		}
		return nil
	})
	return nil
}

// run runs a script alone and types its reply at once (scriptReply).
func (s *Store) run(ctx context.Context, op string, sc *goredis.Script, keys []string, args ...any) (status string, vals []string, err error) {
	cmd := evalCmd(ctx, sc, keys, args...)
	if err := s.roundTrip(ctx, cmd); err != nil {
		return "", nil, wrap(op, err)
	}
	return scriptReply(op, cmd)
}

// scriptReply types a script's reply: a status and string values. A context
// error is returned as is; any other failure, a script error or a reply of an
// unexpected shape is store.ErrUnavailable. A failure status is returned as
// its sentinel.
func scriptReply(op string, cmd *goredis.StringSliceCmd) (status string, vals []string, err error) {
	res, err := cmd.Result()
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
