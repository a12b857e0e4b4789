package redis

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/store"
)

// TestBatcherHonoursContext: a call whose context is done before its batch
// is written answers ctx.Err() and sends nothing, even when it had to wait
// behind busy flushers; calls in flight still get their replies.
func TestBatcherHonoursContext(t *testing.T) {
	for _, flushers := range []int{1, batchFlushers} {
		t.Run(strconv.Itoa(flushers)+" flushers", func(t *testing.T) {
			batcherHonoursContext(t, newStoreOn(t, newTestServer(t), WithBatchFlushers(flushers)), flushers)
		})
	}
}

func batcherHonoursContext(t *testing.T, s *Store, flushers int) {
	if s.batch == nil {
		t.Fatal("batching is off by default")
	}
	bg := context.Background()
	key := s.key("batch", testFID(t))

	// Already done: nothing is sent.
	done, cancel := context.WithCancel(bg)
	cancel()
	set := goredis.NewStatusCmd(done, "set", key, "1")
	if err := s.roundTrip(done, set); !errors.Is(err, context.Canceled) {
		t.Fatalf("a call with a canceled context: %v", err)
	}

	// Every flusher busy with a blocking command: a call whose deadline
	// passes while it waits is dropped.
	list := s.key("batch", "list")
	// One at a time: two calls sent together may share one flusher's
	// pipeline, and the second would then wait behind the first on one
	// connection instead of occupying the other flusher.
	blocked := make(chan error, flushers)
	for i := range flushers {
		go func() {
			pop := goredis.NewStringSliceCmd(bg, "blpop", list, 30)
			if err := s.roundTrip(bg, pop); err != nil {
				blocked <- err
				return
			}
			blocked <- pop.Err()
		}()
		want := "blocked_clients:" + strconv.Itoa(i+1) + "\r\n"
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(s.rdb.Info(bg, "clients").Val(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("flusher %d never blocked", i+1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	short, cancel := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel()
	set = goredis.NewStatusCmd(short, "set", key, "1")
	if err := s.roundTrip(short, set); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a call whose deadline passed while it waited: %v", err)
	}
	// Release the flushers (a plain command, outside the batcher).
	for range flushers {
		if err := s.rdb.RPush(bg, list, "x").Err(); err != nil {
			t.Fatal(err)
		}
	}
	for range flushers {
		if err := <-blocked; err != nil {
			t.Fatalf("a call in flight: %v, want its reply", err)
		}
	}
	if n := s.rdb.Exists(bg, key).Val(); n != 0 {
		t.Fatal("a call whose context ended before its batch was written was sent anyway")
	}

	// And the batcher still works.
	set = goredis.NewStatusCmd(bg, "set", key, "1")
	if err := s.roundTrip(bg, set); err != nil || set.Err() != nil {
		t.Fatalf("after: %v, %v", err, set.Err())
	}
}

// TestBatcherClose: after Close, calls fail as unavailable rather than hang.
func TestBatcherClose(t *testing.T) {
	s, _ := newTestStore(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_ = s.Close() // twice is harmless
	_, err := s.DenyState(context.Background(), store.DenyQuery{JTI: "j"})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a call after Close: %v, want ErrUnavailable", err)
	}
}
