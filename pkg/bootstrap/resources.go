package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/valetauth/valet/pkg/store"
)

// resourceServer creates r, or rewrites the stored one when its name, scopes or lifetime differ
// (scopes compare as a set), re-reading after a lost race.
func (a *applier) resourceServer(ctx context.Context, r ResourceServer) (Result, error) {
	res := Result{Kind: KindResourceServer, ID: r.ID, Key: r.Key}
	for range casAttempts {
		cur, err := a.Registry.GetResourceServer(ctx, r.ID)
		if errors.Is(err, store.ErrNotFound) {
			now := a.Now()
			err := a.Registry.CreateResourceServer(ctx, store.ResourceServer{
				ID: r.ID, Name: r.Name, Scopes: slices.Clone(r.Scopes), AccessTokenLifetime: r.AccessTokenLifetime,
				CreatedAt: now, UpdatedAt: now,
			})
			if errors.Is(err, store.ErrAlreadyExists) {
				continue // another replica created it: compare with theirs
			}
			if err != nil {
				return res, fmt.Errorf("create: %w", err)
			}
			res.Outcome = Created
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("read: %w", err)
		}
		var drifted []string
		if cur.Name != r.Name {
			drifted = append(drifted, "name")
		}
		if !sameSet(cur.Scopes, r.Scopes) {
			drifted = append(drifted, "scopes")
		}
		if cur.AccessTokenLifetime != r.AccessTokenLifetime {
			drifted = append(drifted, "access_token_lifetime")
		}
		if len(drifted) == 0 {
			res.Outcome = Unchanged
			return res, nil
		}
		next := cur
		next.Name, next.Scopes, next.AccessTokenLifetime, next.UpdatedAt = r.Name, slices.Clone(r.Scopes), r.AccessTokenLifetime, a.Now()
		if _, err := a.Registry.UpdateResourceServer(ctx, next); errors.Is(err, store.ErrConflict) {
			continue
		} else if err != nil {
			return res, fmt.Errorf("update: %w", err)
		}
		res.Outcome, res.Drifted = Drifted, drifted
		return res, nil
	}
	return res, fmt.Errorf("changed concurrently %d times in a row; giving up", casAttempts)
}

// checkReferences checks, before any client is written, that every resource server a declared
// client names exists and defines the scopes the client is allowed there, as the admin API does.
// It returns every problem at once, each naming its key.
func (a *applier) checkReferences(ctx context.Context, clients []Client) error {
	cache := map[string]*store.ResourceServer{}
	get := func(id string) (*store.ResourceServer, error) {
		if r, ok := cache[id]; ok {
			return r, nil
		}
		r, err := a.Registry.GetResourceServer(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			cache[id] = nil
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("bootstrap: read resource server %q: %w", id, err)
		}
		cache[id] = &r
		return &r, nil
	}
	var errs []error
	for _, c := range clients {
		for _, al := range c.Resources {
			r, err := get(al.ID)
			if err != nil {
				return err
			}
			if r == nil {
				errs = append(errs, fmt.Errorf("%s.id: %q is not a registered resource server; declare it in bootstrap.resource_servers", al.Key, al.ID))
				continue
			}
			for i, sc := range al.Scopes {
				if !slices.Contains(r.Scopes, sc) {
					errs = append(errs, fmt.Errorf("%s.scopes[%d]: %q is not defined by resource server %q", al.Key, i, sc, al.ID))
				}
			}
		}
		for i, id := range c.ResourceIDs {
			r, err := get(id)
			if err != nil {
				return err
			}
			if r == nil {
				errs = append(errs, fmt.Errorf("%s.resource_ids[%d]: %q is not a registered resource server", c.Key, i, id))
			}
		}
	}
	return errors.Join(errs...)
}

// sameSet reports whether a and b hold the same strings, in any order (nil equals empty).
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
