package redis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/store/conformance"
	"github.com/valetauth/valet/pkg/testenv"
)

// slotChecker is a go-redis hook that refuses, as Redis Cluster would with
// CROSSSLOT, every atomic unit naming keys of more than one slot: a script's
// KEYS, a multi-key command, a MULTI/EXEC transaction. A pipeline is not
// atomic: its commands are checked one by one.
type slotChecker struct {
	mu         sync.Mutex
	violations []string
	scripts    map[string]int // script runs checked, by SHA-1
}

func newSlotChecker() *slotChecker { return &slotChecker{scripts: map[string]int{}} }

func (h *slotChecker) DialHook(next goredis.DialHook) goredis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h *slotChecker) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if err := h.check(keysOf(cmd), cmd); err != nil {
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func (h *slotChecker) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		tx := len(cmds) > 0 && strings.EqualFold(cmds[0].Name(), "multi")
		var txKeys []string
		for _, cmd := range cmds {
			keys := keysOf(cmd)
			if tx {
				txKeys = append(txKeys, keys...)
				continue
			}
			if err := h.check(keys, cmd); err != nil {
				cmd.SetErr(err)
				return err
			}
		}
		if tx {
			if err := h.check(txKeys, cmds[0]); err != nil {
				for _, cmd := range cmds {
					cmd.SetErr(err)
				}
				return err
			}
		}
		return next(ctx, cmds)
	}
}

// check records and returns an error when keys span several slots.
func (h *slotChecker) check(keys []string, cmd goredis.Cmder) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if name := strings.ToLower(cmd.Name()); strings.HasPrefix(name, "eval") {
		id := fmt.Sprint(cmd.Args()[1])
		if name == "eval" || name == "eval_ro" {
			sum := sha1.Sum([]byte(id))
			id = hex.EncodeToString(sum[:])
		}
		h.scripts[id]++
	}
	for _, k := range keys[min(1, len(keys)):] {
		if slot(k) != slot(keys[0]) {
			v := fmt.Sprintf("%s: keys in slots %d (%s) and %d (%s)", cmd.Name(), slot(keys[0]), keys[0], slot(k), k)
			h.violations = append(h.violations, v)
			return fmt.Errorf("CROSSSLOT (slot checker) %s", v)
		}
	}
	return nil
}

// keysOf returns the keys a command names, for the commands whose keys may
// span slots; a single-key command returns its key (for transactions).
func keysOf(cmd goredis.Cmder) []string {
	args := cmd.Args()
	str := func(from, to int) []string {
		var out []string
		for i := from; i < to && i < len(args); i++ {
			out = append(out, fmt.Sprint(args[i]))
		}
		return out
	}
	switch name := strings.ToLower(cmd.Name()); name {
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		n, _ := strconv.Atoi(fmt.Sprint(args[2]))
		return str(3, 3+n)
	case "del", "unlink", "exists", "touch", "mget", "watch", "sinter", "sunion", "sdiff", "pfcount":
		return str(1, len(args))
	case "mset", "msetnx":
		var out []string
		for i := 1; i < len(args); i += 2 {
			out = append(out, fmt.Sprint(args[i]))
		}
		return out
	case "rename", "renamenx", "smove", "rpoplpush", "lmove", "copy":
		return str(1, 3)
	case "multi", "exec", "discard", "ping", "info", "config", "script", "client", "hello", "cluster", "select":
		return nil
	default:
		return str(1, 2)
	}
}

// TestScriptsStayInOneSlot runs the whole conformance suite, contention
// cases included, through the slot checker: every script the store runs,
// every multi-key command and every transaction names keys of one Redis
// Cluster slot only.
func TestScriptsStayInOneSlot(t *testing.T) {
	h := newSlotChecker()
	newStore := func(t *testing.T) store.Store {
		srv := newTestServer(t)
		opt, err := goredis.ParseURL(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		rdb := goredis.NewClient(opt)
		rdb.AddHook(h)
		s, err := New(context.Background(), rdb, testenv.AEAD(t), WithPrefix(srv.Prefix))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	conformance.RunTests(t, newStore)
	conformance.RunConcurrencyTests(t, newStore)
	// The relay's full cycle, which the suite does not reach: a pass that
	// finds shards empty retires them (outbox_read closes, outbox_forget
	// drops them from the index).
	t.Run("RelayDrain", func(t *testing.T) {
		s := newStore(t)
		relayDrain(t, s)
	})

	h.mu.Lock()
	defer h.mu.Unlock()
	for _, v := range h.violations {
		t.Errorf("cross-slot: %s", v)
	}
	// Every script of the package ran and was checked.
	for name, src := range map[string]string{
		"code_create": luaCodeCreate, "code_redeem": luaCodeRedeem, "family_create": luaFamilyCreate,
		"family_rotate": luaFamilyRotate, "grant_kill": luaGrantKill, "device_create": luaDeviceCreate,
		"device_decide": luaDeviceDecide, "device_poll": luaDevicePoll, "revoke_token": luaRevokeToken,
		"revoke_family": luaRevokeFamily, "revoke_cutoff": luaRevokeCutoff, "outbox_register": luaOutboxRegister,
		"outbox_read": luaOutboxRead, "outbox_forget": luaOutboxForget,
	} {
		n := h.scripts[newScript(src).Hash()]
		if n == 0 {
			t.Errorf("the suite never ran %s", name)
		}
		t.Logf("%s: %d runs checked", name, n)
	}
	if len(scriptsByHash) != 14 {
		t.Errorf("%d scripts, the check above names 14: add the new one", len(scriptsByHash))
	}
}

// TestSlotCheckerCatchesCrossSlot makes sure the checker is not vacuous.
func TestSlotCheckerCatchesCrossSlot(t *testing.T) {
	s, _ := newTestStore(t)
	h := newSlotChecker()
	s.rdb.AddHook(h)
	ctx := context.Background()
	err := goredis.NewScript("return 1").Run(ctx, s.rdb, []string{s.jtiKey("a"), s.grant(testFID(t)).rev}).Err()
	if err == nil || len(h.violations) != 1 {
		t.Fatalf("a script over two slots: error %v, %d violations", err, len(h.violations))
	}
	if err := goredis.NewScript("return 1").Run(ctx, s.rdb, []string{s.jtiKey("a"), s.shardKey(jtiTag("a"))}).Err(); err != nil {
		t.Fatalf("a script over one slot: %v", err)
	}
}
