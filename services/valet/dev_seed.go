package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/valetauth/valet/pkg/adminauth"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/users"
	"github.com/valetauth/valet/services/edge"
)

// The demo data valet dev creates at first start (directly in the store).
const (
	// demoResource is the demo resource server (RFC 8707 identifier), the
	// audience of the edge authorizer (valet dev runs it as the demo gateway).
	demoResource = "https://api.example.local"
	// demoClientID is the demo confidential client (client_credentials for
	// demoResource, scopes read and write).
	demoClientID = "demo-client"
	// demoAdminClientID is the admin client: valet:admin on the admin
	// audience (adminauth.Audience of the issuer).
	demoAdminClientID = "valet-admin"
	// demoSPAClientID is the demo public client of the browser flows:
	// authorization code with PKCE, refresh and device, scopes read and
	// write on demoResource.
	demoSPAClientID = "demo-spa"
	// demoSPARedirect is its redirect URI; any port of it is accepted (the
	// loopback exception of RFC 8252 §7.3 for public clients).
	demoSPARedirect = "http://127.0.0.1/callback"
	// demoUsername is the demo user of the login page.
	demoUsername = "demo"
	// grantDeviceCode is the device grant's type (RFC 8628 §3.4).
	grantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"
)

// Files of the data directory.
const (
	devKEKFile          = "dev-kek"
	devKEKID            = "dev-local"
	demoCredentialsFile = "demo-credentials.json"
	demoEnvFile         = "demo.env"
)

// demoPolicy is the edge's route policy in dev mode (without
// services.edge.routes_file): reading needs read, writing needs write.
var demoPolicy = edge.Policy{
	Unmatched: edge.UnmatchedDeny,
	Routes: []edge.Route{
		{Prefix: "/", Scopes: []string{"read"}},
		{Prefix: "/", Methods: []string{"POST", "PUT", "PATCH", "DELETE"}, Scopes: []string{"write"}},
	},
}

// demoCredentials are the generated demo secrets, kept in the data
// directory so that every start can print them again (the store holds only
// their hashes).
type demoCredentials struct {
	Resource          string `json:"resource"`
	ClientID          string `json:"client_id"`
	ClientSecret      string `json:"client_secret"`
	AdminResource     string `json:"admin_resource"`
	AdminClientID     string `json:"admin_client_id"`
	AdminClientSecret string `json:"admin_client_secret"`
	// SPAClientID is the public client of the browser flows (no secret).
	SPAClientID string `json:"spa_client_id,omitempty"`
	// Username and Password are the demo user's; the store holds only the
	// password's argon2id hash.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

// devKEK returns the development key-encryption key of dir, generating it
// (32 random bytes, hex, file mode 0600) at first start.
func devKEK(dir string) (string, map[string][]byte, error) {
	path := filepath.Join(dir, devKEKFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return "", nil, err
		}
		if err := writeFileExcl(path, []byte(hex.EncodeToString(k)+"\n")); err != nil {
			return "", nil, fmt.Errorf("write the development key-encryption key: %w", err)
		}
		return devKEKID, map[string][]byte{devKEKID: k}, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("read the development key-encryption key: %w", err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(k) != 32 {
		return "", nil, fmt.Errorf("%s: not 64 hex characters (32 bytes)", path)
	}
	return devKEKID, map[string][]byte{devKEKID: k}, nil
}

// writeFileExcl creates path with mode 0600, failing if it exists.
func writeFileExcl(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// writeFile0600 replaces path atomically with data, mode 0600.
func writeFile0600(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// hashVerifier is what seeding needs of *secret.Hasher.
type hashVerifier interface {
	Hash(s string) []byte
	Verify(stored []byte, s string) (bool, error)
}

// seedDemo makes sure the demo resource server, the demo client, the
// admin client, the public demo-spa client and (ua not nil) the demo user
// exist with the secrets of the data directory's credentials
// file, generating the secrets at first start. It reports whether the
// credentials were generated now. It is idempotent: a later start finds
// everything in place and changes nothing; a store that lost a client (or a
// credentials file that was deleted) is repaired.
func seedDemo(ctx context.Context, st store.ClientStore, h hashVerifier, ua demoUsers, cfg *config.Config, dir string) (demoCredentials, bool, error) {
	path := filepath.Join(dir, demoCredentialsFile)
	var c demoCredentials
	fresh := false
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c = demoCredentials{Resource: demoResource, ClientID: demoClientID, AdminClientID: demoAdminClientID}
		if c.ClientSecret, err = secret.New(); err != nil {
			return c, false, err
		}
		if c.AdminClientSecret, err = secret.New(); err != nil {
			return c, false, err
		}
		fresh = true
	case err != nil:
		return c, false, fmt.Errorf("read demo credentials: %w", err)
	default:
		if err := json.Unmarshal(raw, &c); err != nil || c.ClientID == "" || c.ClientSecret == "" || c.AdminClientID == "" || c.AdminClientSecret == "" || c.Resource == "" {
			return c, false, fmt.Errorf("%s is damaged; delete it to generate new demo credentials", path)
		}
	}
	c.AdminResource = adminauth.Audience(cfg.Issuer)
	// Files written before the demo user existed gain one.
	if c.SPAClientID == "" {
		c.SPAClientID = demoSPAClientID
	}
	if c.Username == "" || c.Password == "" {
		c.Username = demoUsername
		if c.Password, err = secret.New(); err != nil {
			return c, false, err
		}
	}
	out, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return c, false, err
	}
	// Written before the store so that a secret whose hash is stored can
	// always be printed again.
	if err := writeFile0600(path, append(out, '\n')); err != nil {
		return c, false, fmt.Errorf("write demo credentials: %w", err)
	}

	now := time.Now().UTC()
	for _, rs := range []store.ResourceServer{
		{ID: c.Resource, Name: "Valet dev demo API", Scopes: []string{"read", "write"}},
		{ID: c.AdminResource, Name: "Valet admin API", Scopes: []string{adminauth.Scope}},
	} {
		rs.CreatedAt, rs.UpdatedAt = now, now
		if err := st.CreateResourceServer(ctx, rs); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return c, false, fmt.Errorf("create resource server %s: %w", rs.ID, err)
		}
	}
	for _, want := range []store.Client{
		{ID: c.ClientID, Name: "Valet dev demo client", Resources: map[string][]string{c.Resource: {"read", "write"}}, DefaultResource: c.Resource},
		{ID: c.AdminClientID, Name: "Valet dev admin client", Resources: map[string][]string{c.AdminResource: {adminauth.Scope}}, DefaultResource: c.AdminResource},
	} {
		sec := c.ClientSecret
		if want.ID == c.AdminClientID {
			sec = c.AdminClientSecret
		}
		if err := ensureClient(ctx, st, h, want, sec, now); err != nil {
			return c, false, err
		}
	}
	if err := ensurePublicClient(ctx, st, store.Client{
		ID: c.SPAClientID, Name: "Valet dev demo SPA", Type: store.Public,
		GrantTypes:   []string{"authorization_code", "refresh_token", grantDeviceCode},
		RedirectURIs: []string{demoSPARedirect},
		Resources:    map[string][]string{c.Resource: {"read", "write"}}, DefaultResource: c.Resource,
	}, now); err != nil {
		return c, false, err
	}
	if ua != nil {
		if err := ensureUser(ctx, ua, c.Username, c.Password); err != nil {
			return c, false, err
		}
	}
	return c, fresh, nil
}

// ensurePublicClient creates want, or gives an existing client of that id
// want's grant types, redirect URIs and resources when it lacks them.
func ensurePublicClient(ctx context.Context, st store.ClientStore, want store.Client, now time.Time) error {
	got, err := st.GetClient(ctx, want.ID)
	if errors.Is(err, store.ErrNotFound) {
		want.CreatedAt, want.UpdatedAt = now, now
		if err := st.CreateClient(ctx, want); err != nil {
			return fmt.Errorf("create client %s: %w", want.ID, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read client %s: %w", want.ID, err)
	}
	changed := false
	for _, g := range want.GrantTypes {
		if !slices.Contains(got.GrantTypes, g) {
			got.GrantTypes = append(got.GrantTypes, g)
			changed = true
		}
	}
	for _, r := range want.RedirectURIs {
		if !slices.Contains(got.RedirectURIs, r) {
			got.RedirectURIs = append(got.RedirectURIs, r)
			changed = true
		}
	}
	for res, scopes := range want.Resources {
		if _, ok := got.Resources[res]; !ok {
			if got.Resources == nil {
				got.Resources = map[string][]string{}
			}
			got.Resources[res] = scopes
			got.DefaultResource = want.DefaultResource
			changed = true
		}
	}
	if !changed {
		return nil
	}
	got.UpdatedAt = now
	if _, err := st.UpdateClient(ctx, got); err != nil {
		return fmt.Errorf("update client %s: %w", want.ID, err)
	}
	return nil
}

// demoUsers is what seeding needs of *users.Authenticator.
type demoUsers interface {
	Authenticate(ctx context.Context, username, password string) (users.User, error)
	Add(ctx context.Context, username, password string) (users.User, error)
	SetPassword(ctx context.Context, username, password string) error
	SetDisabled(ctx context.Context, username string, disabled bool) error
}

// ensureUser creates the demo user with password, or, when it exists but
// does not accept password (reset credentials file, disabled account),
// enables it and sets password.
func ensureUser(ctx context.Context, ua demoUsers, username, password string) error {
	_, err := ua.Authenticate(ctx, username, password)
	if !errors.Is(err, users.ErrInvalidCredentials) {
		if err != nil {
			return fmt.Errorf("check demo user %s: %w", username, err)
		}
		return nil
	}
	_, err = ua.Add(ctx, username, password)
	if !errors.Is(err, users.ErrAlreadyExists) {
		if err != nil {
			return fmt.Errorf("create demo user %s: %w", username, err)
		}
		return nil
	}
	if err := ua.SetPassword(ctx, username, password); err != nil {
		return fmt.Errorf("reset demo user %s: %w", username, err)
	}
	if err := ua.SetDisabled(ctx, username, false); err != nil {
		return fmt.Errorf("enable demo user %s: %w", username, err)
	}
	return nil
}

// ensureClient creates want as a confidential client_credentials client
// with sec, or, when it exists, gives it sec and want's resources if it
// lacks them.
func ensureClient(ctx context.Context, st store.ClientStore, h hashVerifier, want store.Client, sec string, now time.Time) error {
	got, err := st.GetClient(ctx, want.ID)
	if errors.Is(err, store.ErrNotFound) {
		want.Type = store.Confidential
		want.GrantTypes = []string{"client_credentials"}
		want.Secrets = []store.Secret{{ID: "dev-1", Hash: h.Hash(sec), CreatedAt: now}}
		want.CreatedAt, want.UpdatedAt = now, now
		if err := st.CreateClient(ctx, want); err != nil {
			return fmt.Errorf("create client %s: %w", want.ID, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read client %s: %w", want.ID, err)
	}
	changed := false
	if !slices.ContainsFunc(got.Secrets, func(s store.Secret) bool { ok, _ := h.Verify(s.Hash, sec); return ok }) {
		got.Secrets = []store.Secret{{ID: fmt.Sprintf("dev-%d", now.Unix()), Hash: h.Hash(sec), CreatedAt: now}}
		changed = true
	}
	for res, scopes := range want.Resources {
		if _, ok := got.Resources[res]; !ok {
			if got.Resources == nil {
				got.Resources = map[string][]string{}
			}
			got.Resources[res] = scopes
			got.DefaultResource = want.DefaultResource
			changed = true
		}
	}
	if !slices.Contains(got.GrantTypes, "client_credentials") {
		got.GrantTypes = append(got.GrantTypes, "client_credentials")
		changed = true
	}
	if !changed {
		return nil
	}
	got.UpdatedAt = now
	if _, err := st.UpdateClient(ctx, got); err != nil {
		return fmt.Errorf("update client %s: %w", want.ID, err)
	}
	return nil
}

// writeDemoEnv writes the shell file of the walkthrough: the demo
// credentials and the URLs of this start.
func writeDemoEnv(path string, c demoCredentials, vars [][2]string) error {
	var b strings.Builder
	b.WriteString("# valet dev: demo credentials and URLs (generated; `. " + path + "` in a shell)\n")
	all := append([][2]string{
		{"CLIENT_ID", c.ClientID}, {"CLIENT_SECRET", c.ClientSecret}, {"RESOURCE", c.Resource},
		{"ADMIN_CLIENT_ID", c.AdminClientID}, {"ADMIN_CLIENT_SECRET", c.AdminClientSecret}, {"ADMIN_RESOURCE", c.AdminResource},
		{"SPA_CLIENT_ID", c.SPAClientID}, {"DEMO_USERNAME", c.Username}, {"DEMO_PASSWORD", c.Password},
	}, vars...)
	for _, kv := range all {
		fmt.Fprintf(&b, "export %s='%s'\n", kv[0], kv[1])
	}
	return writeFile0600(path, []byte(b.String()))
}
