package bootstrap

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/valetauth/valet/pkg/adminauth"
	"github.com/valetauth/valet/pkg/config"
	"github.com/valetauth/valet/pkg/secret"
	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/users"
)

// Spec is the bootstrap section with its references read: everything Apply needs and nothing
// it has to look up in the environment. Resolve builds it.
type Spec struct {
	// ResourceServers come first: clients refer to them.
	ResourceServers []ResourceServer
	// Clients include the admin clients.
	Clients []Client
	// Users are the login page's accounts.
	Users []User
}

// Empty reports whether the spec declares nothing.
func (s Spec) Empty() bool {
	return len(s.ResourceServers) == 0 && len(s.Clients) == 0 && len(s.Users) == 0
}

// ResourceServer is one declared resource server.
type ResourceServer struct {
	// Key is where it is declared (bootstrap.resource_servers[0]), for messages.
	Key                 string
	ID                  string
	Name                string
	Scopes              []string
	AccessTokenLifetime time.Duration
}

// Client is one declared client.
type Client struct {
	// Key is where it is declared (bootstrap.clients[1], bootstrap.admin_clients[0]).
	Key  string
	ID   string
	Name string
	Type store.ClientType
	// Secrets are the declared secrets, the current one first; empty for a public client.
	Secrets             []Credential
	GrantTypes          []string
	RedirectURIs        []string
	Resources           []Allowance
	DefaultResource     string
	ResourceIDs         []string
	AccessTokenLifetime time.Duration
	CORSOrigins         []string
	FirstParty          bool
	Disabled            bool
}

// Allowance is one resource a declared client may get tokens for.
type Allowance struct {
	// Key is where it is declared (bootstrap.clients[1].resources[0]).
	Key    string
	ID     string
	Scopes []string
}

// User is one declared account.
type User struct {
	// Key is where it is declared (bootstrap.users[0]).
	Key      string
	Username string
	Password Credential
	Disabled bool
}

// Credential is a declared client secret or password: the value a reference pointed at, or a
// hash written in the file. It never prints its value, whatever the verb, so a Spec can be
// logged or printed in a test failure without leaking it (MISSION invariant 5).
type Credential struct {
	// Key is the declaring key (bootstrap.clients[1].secret).
	Key string
	// Source is the reference (env:NAME, file:/path), or "hash".
	Source string
	clear  string
	hash   []byte
}

// sourceHash is the Source of a credential written in the file as a hash.
const sourceHash = "hash"

// Format prints the credential's key and source, never its value.
func (c Credential) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "%s (%s)", c.Key, c.Source)
}

// IsHash reports whether the credential was declared as a hash rather than read from a reference.
func (c Credential) IsHash() bool { return c.hash != nil }

// Resolve reads the bootstrap section of cfg, which Validate has accepted, into a Spec: it reads
// every env:NAME through lookupEnv (os.LookupEnv when nil) and every file:/path, and adds the
// admin resource server (adminauth.Audience of the issuer, scope valet:admin) when admin clients
// are declared and resource_servers does not declare it. It touches no store. It returns every
// problem at once, each naming its key: an unset variable, an unreadable or empty file, a client
// secret shorter than config.MinClientSecretLength, a password longer than users.MaxPasswordLen,
// an explicitly declared admin resource server without valet:admin. No message holds a value.
func Resolve(cfg *config.Config, lookupEnv func(string) (string, bool)) (Spec, error) {
	b := cfg.Bootstrap
	var spec Spec
	var errs []error
	fail := func(key string, err error) { errs = append(errs, fmt.Errorf("%s: %w", key, err)) }

	adminAud := adminauth.Audience(cfg.Issuer)
	adminDeclared := false
	for i, r := range b.ResourceServers {
		key := fmt.Sprintf("bootstrap.resource_servers[%d]", i)
		if r.ID == adminAud {
			adminDeclared = true
			if len(b.AdminClients) > 0 && !slices.Contains(r.Scopes, adminauth.Scope) {
				fail(key+".scopes", fmt.Errorf("the admin resource server %s must define %s while admin_clients are declared", adminAud, adminauth.Scope))
			}
		}
		spec.ResourceServers = append(spec.ResourceServers, ResourceServer{
			Key: key, ID: r.ID, Name: r.Name, Scopes: r.Scopes, AccessTokenLifetime: r.AccessTokenLifetime,
		})
	}
	if len(b.AdminClients) > 0 && !adminDeclared {
		spec.ResourceServers = append(spec.ResourceServers, ResourceServer{
			Key: "bootstrap.admin_clients", ID: adminAud, Name: "Valet admin API", Scopes: []string{adminauth.Scope},
		})
	}

	secrets := func(key, current, previous string) []Credential {
		var out []Credential
		for _, f := range []struct{ key, value string }{{key + ".secret", current}, {key + ".previous_secret", previous}} {
			if f.value == "" {
				continue
			}
			c, err := credential(f.key, f.value, lookupEnv, func(s string) bool { return secret.ValidFormat([]byte(s)) })
			if err != nil {
				fail(f.key, err)
				continue
			}
			if !c.IsHash() && len(c.clear) < config.MinClientSecretLength {
				fail(f.key, fmt.Errorf("the secret read from %s is shorter than %d characters; generate one with `openssl rand -base64 32`", c.Source, config.MinClientSecretLength))
				continue
			}
			out = append(out, c)
		}
		return out
	}
	for i, c := range b.Clients {
		key := fmt.Sprintf("bootstrap.clients[%d]", i)
		typ := store.ClientType(c.Type)
		if typ == "" {
			typ = store.Confidential
		}
		cl := Client{
			Key: key, ID: c.ID, Name: c.Name, Type: typ,
			GrantTypes: c.GrantTypes, RedirectURIs: c.RedirectURIs, DefaultResource: c.DefaultResource,
			ResourceIDs: c.ResourceIDs, AccessTokenLifetime: c.AccessTokenLifetime, CORSOrigins: c.CORSOrigins,
			FirstParty: c.FirstParty, Disabled: c.Disabled,
		}
		if typ == store.Confidential {
			cl.Secrets = secrets(key, c.Secret, c.PreviousSecret)
		}
		for j, a := range c.Resources {
			cl.Resources = append(cl.Resources, Allowance{Key: fmt.Sprintf("%s.resources[%d]", key, j), ID: a.ID, Scopes: a.Scopes})
		}
		spec.Clients = append(spec.Clients, cl)
	}
	for i, a := range b.AdminClients {
		key := fmt.Sprintf("bootstrap.admin_clients[%d]", i)
		spec.Clients = append(spec.Clients, Client{
			Key: key, ID: a.ID, Name: a.Name, Type: store.Confidential,
			Secrets:         secrets(key, a.Secret, a.PreviousSecret),
			GrantTypes:      []string{"client_credentials"},
			Resources:       []Allowance{{Key: key, ID: adminAud, Scopes: []string{adminauth.Scope}}},
			DefaultResource: adminAud,
		})
	}

	for i, u := range b.Users {
		key := fmt.Sprintf("bootstrap.users[%d]", i)
		pw, err := credential(key+".password", u.Password, lookupEnv, func(s string) bool { return len(s) > 10 && s[:10] == "$argon2id$" })
		if err != nil {
			fail(key+".password", err)
			continue
		}
		if !pw.IsHash() && len(pw.clear) > users.MaxPasswordLen {
			fail(key+".password", fmt.Errorf("the password read from %s is longer than %d bytes", pw.Source, users.MaxPasswordLen))
			continue
		}
		spec.Users = append(spec.Users, User{Key: key, Username: u.Username, Password: pw, Disabled: u.Disabled})
	}
	if len(errs) > 0 {
		return Spec{}, errors.Join(errs...)
	}
	return spec, nil
}

// credential reads one declared secret or password: a reference is read, a value isHash accepts
// is kept as the hash, anything else is refused without quoting it.
func credential(key, value string, lookupEnv func(string) (string, bool), isHash func(string) bool) (Credential, error) {
	switch {
	case config.IsReference(value):
		v, err := config.ReadReference(value, lookupEnv)
		if err != nil {
			return Credential{}, err
		}
		return Credential{Key: key, Source: value, clear: v}, nil
	case isHash(value):
		return Credential{Key: key, Source: sourceHash, hash: []byte(value)}, nil
	}
	return Credential{}, errors.New("is neither a reference (env:NAME, file:/path) nor a hash; a secret is never written in the file")
}
