package redis

// Clients and resource servers (store.ClientStore). Signing keys are in
// registry_keys.go, sessions and consents in registry_sessions.go.
//
// Each registry record is one string of JSON (the types of package record,
// shared with the embedded backend, are the stored schema) and each kind has
// a sorted-set index of its ids. A record and its index share the kind's hash tag ({clients},
// {resources}, {keys}), so that create, compare-and-set update and delete are
// single-slot scripts on Redis Cluster:
//
//	<prefix>{clients}        sorted set: every client id, score 0 (lexicographic)
//	<prefix>{clients}:<id>   string: record.Client JSON
//	<prefix>{resources}      sorted set: every resource server id, score 0
//	<prefix>{resources}:<id> string: record.ResourceServer JSON
//
// A record key always has a ':' after the tag and an index key never does, so
// no id can name an index.

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/valetauth/valet/pkg/store"
	"github.com/valetauth/valet/pkg/store/record"
)

// Bounds on registry fields: ids end up in keys, JWT claims, logs and event
// subjects.
const ()

// Hash tags of the registry kinds.
const (
	tagClients   = "{clients}"
	tagResources = "{resources}"
)

// createRecord stores a new registry record and indexes its id, unless the id
// is taken.
//
//	KEYS[1] the record (string, JSON)
//	KEYS[2] the kind's index (sorted set of ids)
//	ARGV[1] the record's JSON, with version 1
//	ARGV[2] the record's id (index member)
//	ARGV[3] the index score (0, or CreatedAt in Unix ms for signing keys)
//
// Returns 1 when stored, 0 when the id was taken.
var createRecord = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
return 1
`)

// updateRecord replaces a registry record if its stored "version" equals the
// expected one (compare-and-set).
//
//	KEYS[1] the record (string, JSON with a numeric "version" field)
//	KEYS[2] the kind's index (sorted set of ids)
//	ARGV[1] the expected stored version (decimal)
//	ARGV[2] the new JSON, with version ARGV[1]+1
//	ARGV[3] the record's id (index member)
//	ARGV[4] the index score (0, or CreatedAt in Unix ms for signing keys)
//
// Returns 1 when replaced, 0 when there is no record, -1 when the stored
// version differs.
var updateRecord = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then
  return 0
end
if cjson.decode(cur)['version'] ~= tonumber(ARGV[1]) then
  return -1
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
return 1
`)

// deleteRecord removes a registry record and its index entry.
//
//	KEYS[1] the record (string)
//	KEYS[2] the kind's index (sorted set of ids)
//	ARGV[1] the record's id (index member)
//
// Returns 1 when a record was removed, 0 when there was none.
var deleteRecord = goredis.NewScript(`
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return n
`)

// recordKind names where one registry kind lives: its hash tag and, for
// errors, its name.
type recordKind struct {
	tag  string
	name string
}

var (
	clientKind   = recordKind{tag: tagClients, name: "client"}
	resourceKind = recordKind{tag: tagResources, name: "resource server"}
)

func (s *Store) indexKey(k recordKind) string             { return s.key(k.tag) }
func (s *Store) recordKey(k recordKind, id string) string { return s.key(k.tag, id) }

// createIn stores rec (already at version 1) under id, indexed with score.
func (s *Store) createIn(ctx context.Context, k recordKind, id string, score int64, rec any) error {
	op := "create " + k.name + " " + strconv.Quote(id)
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", op, err)
	}
	n, err := createRecord.Run(ctx, s.rdb,
		[]string{s.recordKey(k, id), s.indexKey(k)},
		data, id, score).Int64()
	if err != nil {
		return wrap(op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, store.ErrAlreadyExists)
	}
	return nil
}

// updateIn replaces the record under id if it is at version was; rec carries
// version was+1.
func (s *Store) updateIn(ctx context.Context, k recordKind, id string, was, score int64, rec any) error {
	op := "update " + k.name + " " + strconv.Quote(id)
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", op, err)
	}
	n, err := updateRecord.Run(ctx, s.rdb,
		[]string{s.recordKey(k, id), s.indexKey(k)},
		was, data, id, score).Int64()
	switch {
	case err != nil:
		return wrap(op, err)
	case n == 0:
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	case n < 0:
		return fmt.Errorf("%s at version %d: %w", op, was, store.ErrConflict)
	}
	return nil
}

// deleteIn removes the record under id and its index entry.
func (s *Store) deleteIn(ctx context.Context, k recordKind, id string) error {
	op := "delete " + k.name + " " + strconv.Quote(id)
	n, err := deleteRecord.Run(ctx, s.rdb,
		[]string{s.recordKey(k, id), s.indexKey(k)}, id).Int64()
	if err != nil {
		return wrap(op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	}
	return nil
}

// getIn decodes the record under id into rec.
func (s *Store) getIn(ctx context.Context, k recordKind, id string, rec any) error {
	op := "get " + k.name + " " + strconv.Quote(id)
	data, err := s.rdb.Get(ctx, s.recordKey(k, id)).Bytes()
	if err != nil {
		return wrap(op, err)
	}
	if err := json.Unmarshal(data, rec); err != nil {
		return malformed(op, err)
	}
	return nil
}

// listIn returns the JSON of every record of k in index order. It reads the
// index, then the records in one MGET (one slot: they share the tag); a
// record deleted in between is left out.
func (s *Store) listIn(ctx context.Context, k recordKind) ([][]byte, error) {
	op := "list " + k.name + "s"
	ids, err := s.rdb.ZRange(ctx, s.indexKey(k), 0, -1).Result()
	if err != nil {
		return nil, wrap(op, err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.recordKey(k, id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, wrap(op, err)
	}
	out := make([][]byte, 0, len(vals))
	for _, v := range vals {
		if str, ok := v.(string); ok {
			out = append(out, []byte(str))
		}
	}
	return out, nil
}

// CreateClient stores c with Version 1 (RFC 6749 §2). It returns
// store.ErrAlreadyExists if the id is taken, and an error naming the field
// when c is invalid (see validateClient).
func (s *Store) CreateClient(ctx context.Context, c store.Client) error {
	if err := store.ValidateClient(c); err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	c.Version = 1
	return s.createIn(ctx, clientKind, c.ID, 0, record.FromClient(c))
}

// GetClient returns the client with id, or store.ErrNotFound.
func (s *Store) GetClient(ctx context.Context, id string) (store.Client, error) {
	var r record.Client
	if err := s.getIn(ctx, clientKind, id, &r); err != nil {
		return store.Client{}, err
	}
	return r.Client(), nil
}

// UpdateClient replaces the stored client if its Version equals c.Version and
// returns it as stored, with Version+1. It returns store.ErrConflict when the
// stored version differs, store.ErrNotFound when there is no such client,
// and an error naming the field when c is invalid. CreatedAt and UpdatedAt
// are stored as given.
func (s *Store) UpdateClient(ctx context.Context, c store.Client) (store.Client, error) {
	if err := store.ValidateClient(c); err != nil {
		return store.Client{}, fmt.Errorf("update client: %w", err)
	}
	was := c.Version
	c.Version++
	rec := record.FromClient(c)
	if err := s.updateIn(ctx, clientKind, c.ID, was, 0, rec); err != nil {
		return store.Client{}, err
	}
	return rec.Client(), nil
}

// DeleteClient removes a client; store.ErrNotFound if there was none.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return s.deleteIn(ctx, clientKind, id)
}

// ListClients returns every client ordered by id (bytewise).
func (s *Store) ListClients(ctx context.Context) ([]store.Client, error) {
	raw, err := s.listIn(ctx, clientKind)
	if err != nil {
		return nil, err
	}
	out := make([]store.Client, 0, len(raw))
	for _, data := range raw {
		var r record.Client
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, malformed("list clients", err)
		}
		out = append(out, r.Client())
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
	return s.createIn(ctx, resourceKind, r.ID, 0, record.FromResourceServer(r))
}

// GetResourceServer returns the resource server with id, or
// store.ErrNotFound.
func (s *Store) GetResourceServer(ctx context.Context, id string) (store.ResourceServer, error) {
	var r record.ResourceServer
	if err := s.getIn(ctx, resourceKind, id, &r); err != nil {
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
	if err := s.updateIn(ctx, resourceKind, r.ID, was, 0, rec); err != nil {
		return store.ResourceServer{}, err
	}
	return rec.ResourceServer(), nil
}

// DeleteResourceServer removes a resource server; store.ErrNotFound if there
// was none.
func (s *Store) DeleteResourceServer(ctx context.Context, id string) error {
	return s.deleteIn(ctx, resourceKind, id)
}

// ListResourceServers returns every resource server ordered by id.
func (s *Store) ListResourceServers(ctx context.Context) ([]store.ResourceServer, error) {
	raw, err := s.listIn(ctx, resourceKind)
	if err != nil {
		return nil, err
	}
	out := make([]store.ResourceServer, 0, len(raw))
	for _, data := range raw {
		var r record.ResourceServer
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, malformed("list resource servers", err)
		}
		out = append(out, r.ResourceServer())
	}
	return out, nil
}

// malformed is the error for a stored record that does not decode:
// store.ErrUnavailable, because the store cannot answer and must not guess.
func malformed(op string, err error) error {
	return fmt.Errorf("%s: %w: malformed record: %v", op, store.ErrUnavailable, err)
}
