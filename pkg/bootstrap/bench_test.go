package bootstrap_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/bootstrap"
	redisstore "github.com/valetauth/valet/pkg/store/redis"
	"github.com/valetauth/valet/pkg/testenv"
)

// BenchmarkApplyUnchanged measures a start that finds 100 declared clients (secrets from the
// environment, verified with the keyed hash) and their resource server already in place, on a
// real Redis: what every replica pays at every start once the deployment exists.
func BenchmarkApplyUnchanged(b *testing.B) {
	const n = 100
	r := testenv.Redis(b)
	opt, err := goredis.ParseURL(r.URL)
	if err != nil {
		b.Fatal(err)
	}
	st, err := redisstore.New(context.Background(), goredis.NewClient(opt), testenv.AEAD(b), redisstore.WithPrefix(r.Prefix))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	var doc strings.Builder
	env := map[string]string{}
	doc.WriteString("bootstrap:\n  resource_servers:\n    - id: " + apiID + "\n      scopes: [read]\n  clients:\n")
	for i := range n {
		fmt.Fprintf(&doc, "    - id: c%d\n      secret: env:S%d\n      grant_types: [client_credentials]\n      resources:\n        - id: %s\n          scopes: [read]\n", i, i, apiID)
		env[fmt.Sprintf("S%d", i)] = strings.Repeat("x", 40) + fmt.Sprint(i)
	}
	cfg, err := parseErr(doc.String())
	if err != nil {
		b.Fatal(err)
	}
	spec, err := bootstrap.Resolve(cfg, envMap(env))
	if err != nil {
		b.Fatal(err)
	}
	h, err := newHasherTB(b)
	if err != nil {
		b.Fatal(err)
	}
	deps := bootstrap.Deps{Registry: st, Hasher: h}
	ctx := context.Background()
	if _, err := bootstrap.Apply(ctx, spec, deps); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rep, err := bootstrap.Apply(ctx, spec, deps)
		if err != nil || rep.Count(bootstrap.KindClient, bootstrap.Unchanged) != n {
			b.Fatalf("%v %v", rep, err)
		}
	}
}
