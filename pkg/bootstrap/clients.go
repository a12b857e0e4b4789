package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/clientevent"
	"github.com/valetauth/valet/pkg/revoke"
	"github.com/valetauth/valet/pkg/store"
)

// client creates c, or rewrites the stored client where it differs from c, re-reading after a
// lost race; then announces the change as the admin API would.
func (a *applier) client(ctx context.Context, c Client) (Result, error) {
	res := Result{Kind: KindClient, ID: c.ID, Key: c.Key}
	for range casAttempts {
		cur, err := a.Registry.GetClient(ctx, c.ID)
		if errors.Is(err, store.ErrNotFound) {
			now := a.Now()
			rec := declaredClient(c)
			rec.Secrets = a.newSecrets(c.Secrets, nil, now)
			rec.CreatedAt, rec.UpdatedAt = now, now
			err := a.Registry.CreateClient(ctx, rec)
			if errors.Is(err, store.ErrAlreadyExists) {
				continue // another replica created it: compare with theirs
			}
			if err != nil {
				return res, fmt.Errorf("create: %w", err)
			}
			res.Outcome = Created
			res.EventPending = !a.publish(ctx, clientevent.Updated(c.ID, 1))
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("read: %w", err)
		}
		if cur.Type != c.Type {
			return res, fmt.Errorf("the stored client is %s and the declaration says %s; a client's type never changes (delete it, or declare another id)", cur.Type, c.Type)
		}
		now := a.Now()
		next, drifted, secretsChanged := a.diffClient(cur, c, now)
		if len(drifted) == 0 {
			res.Outcome = Unchanged
			return res, nil
		}
		disabling := c.Disabled && !cur.Disabled
		if disabling && a.Revoker == nil {
			return res, errors.New("the declaration disables it, which revokes its tokens, but there is no revoker")
		}
		next.UpdatedAt = now
		saved, err := a.Registry.UpdateClient(ctx, next)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("update: %w", err)
		}
		res.Outcome, res.Drifted = Drifted, drifted
		published := true
		if len(drifted) > 1 || !secretsChanged {
			published = a.publish(ctx, clientevent.Updated(c.ID, saved.Version))
		}
		if secretsChanged {
			// The secrets not declared stopped working with this write.
			published = a.publish(ctx, clientevent.SecretRotated(c.ID, time.Time{})) && published
		}
		res.EventPending = !published
		if disabling {
			// The cut-off comes after the store says disabled: no token issued after it can
			// predate it (as the admin API's disable).
			err := a.Revoker.Client(ctx, c.ID, a.Now(), events.ReasonAdmin, Actor)
			switch {
			case errors.Is(err, revoke.ErrPending):
				res.EventPending = true // recorded; the outbox relay publishes client.revoked
			case err != nil:
				return res, fmt.Errorf("revoke the tokens of the disabled client: %w", err)
			}
		}
		return res, nil
	}
	return res, fmt.Errorf("changed concurrently %d times in a row; giving up", casAttempts)
}

// declaredClient returns the stored form of c's declared fields, without secrets and dates.
func declaredClient(c Client) store.Client {
	rec := store.Client{
		ID: c.ID, Name: c.Name, Type: c.Type,
		GrantTypes: slices.Clone(c.GrantTypes), RedirectURIs: slices.Clone(c.RedirectURIs),
		DefaultResource: c.DefaultResource, ResourceIDs: slices.Clone(c.ResourceIDs),
		AccessTokenLifetime: c.AccessTokenLifetime, CORSOrigins: slices.Clone(c.CORSOrigins),
		FirstParty: c.FirstParty, Disabled: c.Disabled,
	}
	if len(c.Resources) > 0 {
		rec.Resources = make(map[string][]string, len(c.Resources))
		for _, al := range c.Resources {
			rec.Resources[al.ID] = slices.Clone(al.Scopes)
		}
	}
	return rec
}

// diffClient returns cur with c's declared fields, the names of the fields that differed, and
// whether the secrets did.
func (a *applier) diffClient(cur store.Client, c Client, now time.Time) (store.Client, []string, bool) {
	want := declaredClient(c)
	var drifted []string
	check := func(name string, differ bool) {
		if differ {
			drifted = append(drifted, name)
		}
	}
	check("name", cur.Name != want.Name)
	check("grant_types", !sameSet(cur.GrantTypes, want.GrantTypes))
	check("redirect_uris", !sameSet(cur.RedirectURIs, want.RedirectURIs))
	check("resources", !sameResources(cur.Resources, want.Resources))
	check("default_resource", cur.DefaultResource != want.DefaultResource)
	check("resource_ids", !sameSet(cur.ResourceIDs, want.ResourceIDs))
	check("access_token_lifetime", cur.AccessTokenLifetime != want.AccessTokenLifetime)
	check("cors_origins", !sameSet(cur.CORSOrigins, want.CORSOrigins))
	check("first_party", cur.FirstParty != want.FirstParty)
	check("disabled", cur.Disabled != want.Disabled)

	secrets, secretsChanged := a.matchSecrets(cur.Secrets, c.Secrets, now)
	check("secret", secretsChanged)

	next := want
	next.Version, next.CreatedAt, next.UpdatedAt = cur.Version, cur.CreatedAt, cur.UpdatedAt
	next.Secrets = cur.Secrets
	if secretsChanged {
		next.Secrets = secrets
	}
	return next, drifted, secretsChanged
}

// matchSecrets returns the secrets the client must hold, the declared ones, keeping each stored
// entry that already matches one (same hash bytes for a declared hash, a successful Verify for a
// secret read from a reference), and whether that differs from the stored live secrets. A stored
// secret that is not declared, or that matches but carries an expiry, is drift: the declaration
// says exactly which secrets work, and that they do not expire.
func (a *applier) matchSecrets(stored []store.Secret, declared []Credential, now time.Time) ([]store.Secret, bool) {
	var live []store.Secret
	for _, s := range stored {
		if s.ExpiresAt.IsZero() || now.Before(s.ExpiresAt) {
			live = append(live, s)
		}
	}
	used := make([]bool, len(live))
	kept := make([]*store.Secret, len(declared))
	changed := false
	for i, d := range declared {
		for j := range live {
			if used[j] || !a.matches(live[j], d) {
				continue
			}
			used[j] = true
			s := live[j]
			if !s.ExpiresAt.IsZero() {
				changed = true
				s.ExpiresAt = time.Time{}
			}
			kept[i] = &s
			break
		}
		if kept[i] == nil {
			changed = true
		}
	}
	if slices.Contains(used, false) {
		changed = true // a live secret the declaration does not name
	}
	if !changed {
		return stored, false
	}
	return a.newSecrets(declared, kept, now), true
}

// matches reports whether the stored secret s is the declared d.
func (a *applier) matches(s store.Secret, d Credential) bool {
	if d.IsHash() {
		return bytes.Equal(s.Hash, d.hash)
	}
	ok, err := a.Hasher.Verify(s.Hash, d.clear)
	return err == nil && ok // a hash under a KEK no longer configured does not match
}

// newSecrets returns the stored form of the declared secrets: kept[i] where it is set, else a new
// entry (a secret read from a reference hashed with the server's key, a declared hash as is).
func (a *applier) newSecrets(declared []Credential, kept []*store.Secret, now time.Time) []store.Secret {
	out := make([]store.Secret, 0, len(declared))
	for i, d := range declared {
		if kept != nil && kept[i] != nil {
			out = append(out, *kept[i])
			continue
		}
		h := d.hash
		if !d.IsHash() {
			h = a.Hasher.Hash(d.clear)
		}
		id := "boot-" + strconv.FormatInt(now.UnixNano(), 36) + "-" + strconv.Itoa(i+1)
		out = append(out, store.Secret{ID: id, Hash: bytes.Clone(h), CreatedAt: now})
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// sameResources reports whether two allowances name the same resources with the same scopes.
func sameResources(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for id, scopes := range a {
		other, ok := b[id]
		if !ok || !sameSet(scopes, other) {
			return false
		}
	}
	return true
}

// publish announces a client change; false when there is no publisher or it failed (logged).
func (a *applier) publish(ctx context.Context, p events.Payload) bool {
	if a.Publisher == nil {
		return false
	}
	if err := clientevent.Publish(ctx, a.Publisher, a.Source, Actor, a.Now(), p); err != nil {
		a.log.Warn("bootstrap: client change stored but its event is not published", zap.String("event", string(p.EventType())), zap.Error(err))
		return false
	}
	return true
}
