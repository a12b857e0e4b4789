package bolt

// Clients, resource servers and signing keys (store.ClientStore,
// store.KeyStore). Each record is JSON under its id in its kind's bucket, in
// the schema the Redis backend stores too (package record), and never
// expires. A create, a compare-and-set update and a delete are each one step;
// lists are one read transaction, ordered by the bucket's byte order (id).
//
// The validation rules are the Redis backend's (pkg/store/redis/registry.go),
// so that both backends refuse the same input.

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/store/record"
)

// Bounds on registry fields: ids end up in keys, JWT claims, logs and event
// subjects.
const ()

// kind names one registry bucket, for errors.
type kind struct {
	id   bucketID
	name string
}

var (
	clientKind   = kind{bClients, "client"}
	resourceKind = kind{bResources, "resource server"}
	keyKind      = kind{bKeys, "signing key"}
)

// create stores rec (already at version 1) under id unless the id is taken.
func (s *Store) create(ctx context.Context, k kind, id string, rec any) error {
	return s.update(ctx, "create "+k.name+" "+strconv.Quote(id), func(t *txn) error {
		if t.has(k.id, []byte(id)) {
			return store.ErrAlreadyExists
		}
		t.putJSON(k.id, []byte(id), 0, rec)
		return nil
	})
}

// replace replaces the record under id if its stored version is was; rec
// carries version was+1.
func (s *Store) replace(ctx context.Context, k kind, id string, was int64, rec any) error {
	return s.update(ctx, "update "+k.name+" "+strconv.Quote(id), func(t *txn) error {
		var cur struct {
			Version int64 `json:"version"`
		}
		if !t.getJSON(k.id, []byte(id), &cur) {
			return store.ErrNotFound
		}
		if cur.Version != was {
			return fmt.Errorf("at version %d: %w", was, store.ErrConflict)
		}
		t.putJSON(k.id, []byte(id), 0, rec)
		return nil
	})
}

// remove deletes the record under id.
func (s *Store) remove(ctx context.Context, k kind, id string) error {
	return s.update(ctx, "delete "+k.name+" "+strconv.Quote(id), func(t *txn) error {
		if !t.del(k.id, []byte(id)) {
			return store.ErrNotFound
		}
		return nil
	})
}

// fetch decodes the record under id into rec.
func (s *Store) fetch(ctx context.Context, k kind, id string, rec any) error {
	return s.view(ctx, "get "+k.name+" "+strconv.Quote(id), func(t *txn) error {
		if !t.getJSON(k.id, []byte(id), rec) {
			return store.ErrNotFound
		}
		return nil
	})
}

// list decodes every record of k, in id order, with decode.
func (s *Store) list(ctx context.Context, k kind, decode func(t *txn, key []byte) bool) error {
	return s.view(ctx, "list "+k.name+"s", func(t *txn) error {
		c := t.bucket(k.id).Cursor()
		for key, _ := c.First(); key != nil; key, _ = c.Next() {
			if !decode(t, key) && t.err != nil {
				return nil
			}
		}
		return nil
	})
}

// CreateClient stores c with Version 1 (RFC 6749 §2). It returns
// store.ErrAlreadyExists if the id is taken, and an error naming the field
// when c is invalid (see validateClient).
func (s *Store) CreateClient(ctx context.Context, c store.Client) error {
	if err := store.ValidateClient(c); err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	c.Version = 1
	return s.create(ctx, clientKind, c.ID, record.FromClient(c))
}

// GetClient returns the client with id, or store.ErrNotFound.
func (s *Store) GetClient(ctx context.Context, id string) (store.Client, error) {
	var r record.Client
	if err := s.fetch(ctx, clientKind, id, &r); err != nil {
		return store.Client{}, err
	}
	return r.Client(), nil
}

// UpdateClient replaces the stored client if its Version equals c.Version and
// returns it as stored, with Version+1. It returns store.ErrConflict when the
// stored version differs, store.ErrNotFound when there is no such client,
// and an error naming the field when c is invalid.
func (s *Store) UpdateClient(ctx context.Context, c store.Client) (store.Client, error) {
	if err := store.ValidateClient(c); err != nil {
		return store.Client{}, fmt.Errorf("update client: %w", err)
	}
	was := c.Version
	c.Version++
	rec := record.FromClient(c)
	if err := s.replace(ctx, clientKind, c.ID, was, rec); err != nil {
		return store.Client{}, err
	}
	return rec.Client(), nil
}

// DeleteClient removes a client; store.ErrNotFound if there was none.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return s.remove(ctx, clientKind, id)
}

// ListClients returns every client ordered by id (bytewise).
func (s *Store) ListClients(ctx context.Context) ([]store.Client, error) {
	var out []store.Client
	err := s.list(ctx, clientKind, func(t *txn, key []byte) bool {
		var r record.Client
		if !t.getJSON(bClients, key, &r) {
			return false
		}
		out = append(out, r.Client())
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CreateResourceServer stores r with Version 1. It returns
// store.ErrAlreadyExists if the id is taken, and an error when r.ID is not an
// absolute URI without fragment (RFC 8707 §2).
func (s *Store) CreateResourceServer(ctx context.Context, r store.ResourceServer) error {
	if err := store.ValidateResourceServer(r); err != nil {
		return fmt.Errorf("create resource server: %w", err)
	}
	r.Version = 1
	return s.create(ctx, resourceKind, r.ID, record.FromResourceServer(r))
}

// GetResourceServer returns the resource server with id, or
// store.ErrNotFound.
func (s *Store) GetResourceServer(ctx context.Context, id string) (store.ResourceServer, error) {
	var r record.ResourceServer
	if err := s.fetch(ctx, resourceKind, id, &r); err != nil {
		return store.ResourceServer{}, err
	}
	return r.ResourceServer(), nil
}

// UpdateResourceServer replaces the stored resource server if its Version
// equals r.Version and returns it as stored, with Version+1;
// store.ErrConflict when the version differs, store.ErrNotFound when there
// is none.
func (s *Store) UpdateResourceServer(ctx context.Context, r store.ResourceServer) (store.ResourceServer, error) {
	if err := store.ValidateResourceServer(r); err != nil {
		return store.ResourceServer{}, fmt.Errorf("update resource server: %w", err)
	}
	was := r.Version
	r.Version++
	rec := record.FromResourceServer(r)
	if err := s.replace(ctx, resourceKind, r.ID, was, rec); err != nil {
		return store.ResourceServer{}, err
	}
	return rec.ResourceServer(), nil
}

// DeleteResourceServer removes a resource server; store.ErrNotFound if there
// was none.
func (s *Store) DeleteResourceServer(ctx context.Context, id string) error {
	return s.remove(ctx, resourceKind, id)
}

// ListResourceServers returns every resource server ordered by id.
func (s *Store) ListResourceServers(ctx context.Context) ([]store.ResourceServer, error) {
	var out []store.ResourceServer
	err := s.list(ctx, resourceKind, func(t *txn, key []byte) bool {
		var r record.ResourceServer
		if !t.getJSON(bResources, key, &r) {
			return false
		}
		out = append(out, r.ResourceServer())
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CreateKey stores k with Version 1; store.ErrAlreadyExists if the kid
// exists, and an error when the kid, alg or state is invalid.
func (s *Store) CreateKey(ctx context.Context, k store.SigningKey) error {
	if err := store.ValidateKey(k); err != nil {
		return fmt.Errorf("create signing key: %w", err)
	}
	k.Version = 1
	return s.create(ctx, keyKind, k.KID, record.FromSigningKey(k))
}

// UpdateKey replaces the stored key if its Version equals k.Version and
// returns it as stored, with Version+1, so that replicas agree on each step
// of the key's lifecycle. It returns store.ErrConflict when the stored
// version differs and store.ErrNotFound when there is no such key.
func (s *Store) UpdateKey(ctx context.Context, k store.SigningKey) (store.SigningKey, error) {
	if err := store.ValidateKey(k); err != nil {
		return store.SigningKey{}, fmt.Errorf("update signing key: %w", err)
	}
	was := k.Version
	k.Version++
	rec := record.FromSigningKey(k)
	if err := s.replace(ctx, keyKind, k.KID, was, rec); err != nil {
		return store.SigningKey{}, err
	}
	return rec.SigningKey(), nil
}

// ListKeys returns every key not deleted, ordered by CreatedAt (then kid).
func (s *Store) ListKeys(ctx context.Context) ([]store.SigningKey, error) {
	var out []store.SigningKey
	err := s.list(ctx, keyKind, func(t *txn, key []byte) bool {
		var r record.SigningKey
		if !t.getJSON(bKeys, key, &r) {
			return false
		}
		out = append(out, r.SigningKey())
		return true
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].KID < out[j].KID
	})
	return out, nil
}

// DeleteKey removes a key; store.ErrNotFound if there was none. The caller
// deletes only retired keys (MISSION §0.4); the store does not check the
// state.
func (s *Store) DeleteKey(ctx context.Context, kid string) error {
	return s.remove(ctx, keyKind, kid)
}
