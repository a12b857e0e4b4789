package bootstrap_test

import (
	"os"
	"strings"
	"testing"

	"github.com/valetauth/valet/pkg/config"
)

// TestDocExamples parses every yaml block of the documents that show a bootstrap section,
// strictly, as the issuer would load it (in dev mode, so that the rest of the configuration may
// be left out): an example that does not load would teach a wrong format.
func TestDocExamples(t *testing.T) {
	for _, path := range []string{"../../docs/bootstrap.md", "../../docs/admin.md"} {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		blocks := strings.Split(string(raw), "```yaml\n")[1:]
		found := 0
		for i, b := range blocks {
			block, _, ok := strings.Cut(b, "```")
			if !ok {
				t.Fatalf("%s: yaml block %d is not closed", path, i)
			}
			if !strings.Contains(block, "bootstrap:") {
				continue
			}
			found++
			cfg, err := config.Parse([]byte("dev: true\n"+block), envMap(nil))
			if err != nil {
				t.Errorf("%s: yaml block %d does not load:\n%v", path, i, err)
				continue
			}
			if cfg.Bootstrap.Empty() {
				t.Errorf("%s: yaml block %d declares nothing", path, i)
			}
		}
		if found == 0 {
			t.Errorf("%s has no bootstrap example", path)
		}
	}
}
