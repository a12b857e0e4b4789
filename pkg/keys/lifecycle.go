package keys

// The lifecycle every replica drives. Each refresh lists the keys, picks the
// first step that applies (plan), performs it, and lists again, until no step
// applies; then it installs the view. Steps are compare-and-set updates, so
// replicas that act at once agree: one wins, the others re-list and see its
// result. A step that makes a key able to sign publishes its event first and
// changes the state only on PubAck (MISSION §0.4); when publishing fails the
// step is not taken and the next refresh tries again.
//
// Two facts have no field of their own in store.SigningKey, so the time
// fields carry them:
//
//   - a published key whose ActivateAt is more than markerSlack before its
//     CreatedAt (zero, as created) is not announced yet: its key.published
//     event has not been acknowledged, and it cannot become active.
//     Announcing sets ActivateAt.
//   - a revoked key whose RetireAt is more than markerSlack before its
//     CreatedAt (zero, as revoked) is not announced yet: its key.revoked
//     event is still owed. Announcing sets RetireAt to when it was
//     acknowledged.
//
// The slack makes the markers indifferent to how a backend stores a zero
// time (year 1, or 1970) and to small clock differences between replicas.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/store"
)

// actor attributes automatic key events.
const actor = "system"

// errRelist says a step lost a compare-and-set: list again and re-plan.
var errRelist = errors.New("keys: lost a compare-and-set")

// errYield says another replica is doing the step: stop this refresh.
var errYield = errors.New("keys: another replica is rotating")

// markerSlack: see the file comment.
const markerSlack = time.Hour

// announced reports whether a published key's key.published event was
// acknowledged (see the file comment).
func announced(k store.SigningKey) bool {
	return !k.ActivateAt.Before(k.CreatedAt.Add(-markerSlack))
}

// revocationAnnounced reports whether a revoked key's key.revoked event was
// acknowledged.
func revocationAnnounced(k store.SigningKey) bool {
	return !k.RetireAt.Before(k.CreatedAt.Add(-markerSlack))
}

// Refresh reloads the key ring from the store, drives the lifecycle one or
// more steps, and installs the new view (JWKS, the key to sign with). It
// returns an error when the store cannot be listed (the last view stays) or a
// step failed (the view is installed anyway; the step is retried next time).
func (m *Manager) Refresh(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refreshLocked(ctx)
}

func (m *Manager) refreshLocked(ctx context.Context) error {
	defer m.gen.Add(1)
	var stepErr error
	for i := 0; ; i++ {
		loaded := m.now()
		keys, err := m.st.ListKeys(ctx)
		if err != nil {
			m.met.refreshFailures.Inc()
			return errors.Join(stepErr, fmt.Errorf("keys: refresh: list keys: %w", err))
		}
		// Install every view, not only the last: a key created by the
		// previous step is in this replica's JWKS before the next step
		// announces it.
		m.install(keys, loaded)
		if stepErr != nil || i == maxSteps {
			return stepErr
		}
		step := m.plan(keys, m.now())
		if step == nil {
			return nil
		}
		switch err := step(ctx); {
		case err == nil, errors.Is(err, errRelist):
		case errors.Is(err, errYield):
			return nil
		default:
			// List once more so the view shows what the step did change.
			stepErr = err
		}
	}
}

// reload lists the keys and installs them, taking no lifecycle step.
func (m *Manager) reload(ctx context.Context) error {
	loaded := m.now()
	keys, err := m.st.ListKeys(ctx)
	if err != nil {
		m.met.refreshFailures.Inc()
		return fmt.Errorf("keys: list keys: %w", err)
	}
	m.install(keys, loaded)
	return nil
}

// classified is a view of the store sorted for planning.
type classified struct {
	active    []store.SigningKey // newest ActivateAt first
	published []store.SigningKey // newest CreatedAt first
	others    []store.SigningKey // retiring, retired, revoked, by CreatedAt
}

func (m *Manager) classify(keys []store.SigningKey) classified {
	var c classified
	for _, k := range keys {
		if m.parse(k).err != nil {
			continue // logged by parse; never planned, signed with or served
		}
		switch k.State {
		case store.KeyActive:
			c.active = append(c.active, k)
		case store.KeyPublished:
			c.published = append(c.published, k)
		default:
			c.others = append(c.others, k)
		}
	}
	sort.SliceStable(c.active, func(i, j int) bool { return newerActive(c.active[i], c.active[j]) })
	sort.SliceStable(c.published, func(i, j int) bool { return newerCreated(c.published[i], c.published[j]) })
	return c
}

// plan returns the first lifecycle step that applies to keys at now, or nil
// when there is nothing to do. Every replica plans alike from the same keys.
func (m *Manager) plan(keys []store.SigningKey, now time.Time) func(context.Context) error {
	c := m.classify(keys)
	hasActive := len(c.active) > 0
	currentOK := hasActive && !c.active[0].ActivateAt.After(now)

	// 1. Two active keys (a rotation interrupted between its two updates,
	// or two replicas bootstrapping at once): the newest signs, the others
	// retire.
	if currentOK && len(c.active) > 1 {
		k := c.active[len(c.active)-1]
		return func(ctx context.Context) error { return m.retire(ctx, k, now) }
	}
	// 2. A revocation whose event is still owed.
	for _, k := range c.others {
		if k.State == store.KeyRevoked && !revocationAnnounced(k) {
			return func(ctx context.Context) error { return m.announceRevoked(ctx, k, "") }
		}
	}
	// 3. A retiring key whose last token has expired leaves JWKS.
	for _, k := range c.others {
		if k.State == store.KeyRetiring && !now.Before(k.RetireAt) {
			return func(ctx context.Context) error { return m.drop(ctx, k, store.KeyRetiring) }
		}
	}
	// 4. Only the newest published key is the successor; older ones (two
	// replicas rotating at once, a superseded successor) never signed and
	// leave at once, and so does one older than the active key.
	if len(c.published) > 1 {
		k := c.published[len(c.published)-1]
		return func(ctx context.Context) error { return m.drop(ctx, k, store.KeyPublished) }
	}
	// A published key created before the active key started signing lost
	// a race to it (replicas bootstrapping at once): it is no successor.
	// Every real successor is created later (createdAt sees to it).
	if len(c.published) == 1 && hasActive && !c.published[0].CreatedAt.After(c.active[0].ActivateAt) {
		k := c.published[0]
		return func(ctx context.Context) error { return m.drop(ctx, k, store.KeyPublished) }
	}
	if len(c.published) == 1 {
		next := c.published[0]
		// 5. Announce the successor. With no active key nothing can sign
		// anyway (bootstrap, emergency), so it may sign as soon as announced.
		if !announced(next) {
			lead := m.cfg.PublishLeadTime
			if !hasActive {
				lead = 0
			}
			return func(ctx context.Context) error { return m.announce(ctx, next, lead) }
		}
		// 6. Activate it when its time has come (at once with no active key).
		if !next.ActivateAt.After(now) || !hasActive {
			return func(ctx context.Context) error { return m.activate(ctx, next, now) }
		}
	}
	// 7. Bootstrap: no key at all can or will sign.
	if !hasActive && len(c.published) == 0 {
		return m.create
	}
	// 8. Scheduled rotation: publish a successor PublishLeadTime before the
	// current key has signed for RotationInterval.
	if currentOK && len(c.published) == 0 {
		cur := c.active[0]
		if !now.Before(cur.ActivateAt.Add(m.cfg.RotationInterval - m.cfg.PublishLeadTime)) {
			return func(ctx context.Context) error { return m.createSuccessor(ctx, cur) }
		}
	}
	// 9. Forget keys that left JWKS DeleteAfter ago.
	for _, k := range c.others {
		gone := k.State == store.KeyRetired || k.State == store.KeyRevoked && revocationAnnounced(k)
		if gone && !now.Before(k.RetireAt.Add(m.cfg.DeleteAfter)) {
			return func(ctx context.Context) error { return m.forget(ctx, k) }
		}
	}
	return nil
}

// create stores a new key, published and not announced.
func (m *Manager) create(ctx context.Context) error {
	_, err := m.createKey(ctx)
	return err
}

// createdAt returns the CreatedAt of a new key: now, but always after every
// key this replica has listed and after the active key started signing, so
// that "the newest key" is never a tie (clocks and stores of millisecond
// precision, a clock stepped back, a replica whose clock is behind), and a
// successor is never mistaken for a bootstrap race loser.
func (m *Manager) createdAt() time.Time {
	now := m.now()
	if !now.After(m.newest.Add(time.Millisecond)) {
		now = m.newest.Add(time.Millisecond)
	}
	return now
}

func (m *Manager) createKey(ctx context.Context) (store.SigningKey, error) {
	k, err := newRecord(m.cfg.Algorithm, m.ring, m.createdAt())
	if err != nil {
		return store.SigningKey{}, err
	}
	if err := m.st.CreateKey(ctx, k); err != nil {
		return store.SigningKey{}, fmt.Errorf("keys: store new key %s: %w", k.KID, err)
	}
	k.Version = 1
	m.log.Info("signing key created", zap.String("kid", k.KID), zap.String("alg", k.Alg))
	return k, nil
}

// createSuccessor creates the current key's successor. It first claims the
// rotation with an unchanged compare-and-set of the current key, so that of
// several replicas that saw the rotation due only one creates a key; the key
// is generated before the claim so the claim and the create are close.
func (m *Manager) createSuccessor(ctx context.Context, cur store.SigningKey) error {
	k, err := newRecord(m.cfg.Algorithm, m.ring, m.createdAt())
	if err != nil {
		return err
	}
	if _, err := m.st.UpdateKey(ctx, cur); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return errYield
		}
		return fmt.Errorf("keys: claim rotation of %s: %w", cur.KID, err)
	}
	if err := m.st.CreateKey(ctx, k); err != nil {
		return fmt.Errorf("keys: store successor %s: %w", k.KID, err)
	}
	m.log.Info("signing key successor created", zap.String("kid", k.KID), zap.String("alg", k.Alg),
		zap.String("successor_of", cur.KID))
	return nil
}

// announce publishes key.published for k, to sign from now+lead, and on
// PubAck records that (ActivateAt).
func (m *Manager) announce(ctx context.Context, k store.SigningKey, lead time.Duration) error {
	p := m.parse(k)
	if p.err != nil {
		return p.err
	}
	nbf := m.now().Add(lead)
	if err := m.publish(ctx, eventID(events.TypeKeyPublished, k), &events.KeyPublished{
		KID: k.KID, Alg: k.Alg, Thumbprint: p.thumbprint, NotBefore: nbf.Unix(), JWKSURI: m.cfg.JWKSURI,
	}); err != nil {
		return err
	}
	next := k
	next.ActivateAt = nbf
	if !announced(next) {
		next.ActivateAt = k.CreatedAt // a clock stepped far back: still announced
	}
	if err := m.advance(ctx, next, events.TypeKeyPublished); err != nil {
		return err
	}
	m.log.Info("signing key published", zap.String("kid", k.KID), zap.String("alg", k.Alg),
		zap.Time("activate_at", next.ActivateAt))
	return nil
}

// activate publishes key.activated for an announced successor and on PubAck
// makes it active; the key it succeeds retires in the next step.
func (m *Manager) activate(ctx context.Context, k store.SigningKey, now time.Time) error {
	p := m.parse(k)
	if p.err != nil {
		return p.err
	}
	if err := m.publish(ctx, eventID(events.TypeKeyActivated, k), &events.KeyActivated{
		KID: k.KID, Alg: k.Alg, Thumbprint: p.thumbprint,
	}); err != nil {
		return err
	}
	next := k
	next.State = store.KeyActive
	if next.ActivateAt.After(now) {
		next.ActivateAt = now // no active key: sign at once
	}
	if err := m.advance(ctx, next, events.TypeKeyActivated); err != nil {
		return err
	}
	m.met.rotations.Inc()
	m.log.Info("signing key activated", zap.String("kid", k.KID), zap.String("alg", k.Alg))
	return nil
}

// retire moves an active key that is no longer the newest to retiring: it
// stays in JWKS until every token it may have signed has expired.
func (m *Manager) retire(ctx context.Context, k store.SigningKey, now time.Time) error {
	next := k
	next.State = store.KeyRetiring
	next.RetireAt = now.Add(m.cfg.retention())
	if _, err := m.st.UpdateKey(ctx, next); err != nil {
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return errRelist
		}
		return fmt.Errorf("keys: retire %s: %w", k.KID, err)
	}
	m.log.Info("signing key retiring", zap.String("kid", k.KID), zap.Time("retire_at", next.RetireAt))
	return nil
}

// drop publishes key.retired and on PubAck retires k (a retiring key whose
// tokens have all expired, or a published key that never signed), wiping
// its private half: it will never sign again.
func (m *Manager) drop(ctx context.Context, k store.SigningKey, from store.KeyState) error {
	if err := m.publish(ctx, eventID(events.TypeKeyRetired, k), &events.KeyRetired{KID: k.KID}); err != nil {
		return err
	}
	next := k
	next.State, next.Sealed, next.KEKID = store.KeyRetired, nil, ""
	if from == store.KeyPublished || next.RetireAt.IsZero() {
		next.RetireAt = m.now()
	}
	if err := m.advance(ctx, next, events.TypeKeyRetired); err != nil {
		return err
	}
	m.log.Info("signing key retired", zap.String("kid", k.KID), zap.String("was", string(from)))
	return nil
}

// announceRevoked publishes key.revoked for a revoked key and on PubAck
// records that (RetireAt).
func (m *Manager) announceRevoked(ctx context.Context, k store.SigningKey, reason string) error {
	if err := m.publish(ctx, eventID(events.TypeKeyRevoked, k), &events.KeyRevoked{KID: k.KID, Reason: reason}); err != nil {
		return err
	}
	next := k // already announced (Revoke again): pin it unchanged
	if !revocationAnnounced(k) {
		next.RetireAt = m.now()
		if !revocationAnnounced(next) {
			next.RetireAt = k.CreatedAt
		}
	}
	return m.advance(ctx, next, events.TypeKeyRevoked)
}

// forget deletes a key that left JWKS DeleteAfter ago.
func (m *Manager) forget(ctx context.Context, k store.SigningKey) error {
	if err := m.st.DeleteKey(ctx, k.KID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("keys: delete %s: %w", k.KID, err)
	}
	m.log.Info("signing key deleted", zap.String("kid", k.KID), zap.String("state", string(k.State)))
	return nil
}

// eventID returns the id of the event of type t for the step that starts
// from k: deterministic in the kid and the record's version, so replicas
// taking the same step from the same record publish one event (JetStream
// de-duplication), while a later step — even one re-sending the same type
// after another replica's event intervened — gets a new id and is not
// dropped as a duplicate. The key stream keeps only the latest event per
// kid, so a dropped re-send would leave it stating a stage the key left.
func eventID(t events.Type, k store.SigningKey) string {
	return events.DeterministicID(t, k.KID, strconv.FormatInt(k.Version, 10))
}

// publish builds a key event and publishes it, counting failures.
func (m *Manager) publish(ctx context.Context, id string, p events.Payload) error {
	e, err := events.New(id, m.cfg.Source, m.now(), p)
	if err != nil {
		return fmt.Errorf("keys: build %s event: %w", p.EventType(), err)
	}
	if err := m.pub.Publish(ctx, e.WithActor(actor)); err != nil {
		m.met.publishFailures.WithLabelValues(string(p.EventType())).Inc()
		return fmt.Errorf("keys: publish %s for %s: %w", p.EventType(), events.KeyID(p), err)
	}
	return nil
}

// restateAttempts bounds restate's loop; each lost round means another
// replica changed the key meanwhile.
const restateAttempts = 8

// advance stores next after its event (sent) was acknowledged, and returns
// errRelist when the compare-and-set was lost.
//
// The key stream keeps only the latest event per kid, and several replicas
// may publish for one key before their compare-and-sets settle which of them
// moved it; a loser's event may reach the stream after the winner's. So
// every publish is followed by a compare-and-set at the version it was based
// on, and a replica that loses one restates: it publishes the key's actual
// stage and pins it with an unchanged compare-and-set, again until a pin
// holds. The last event on the stream for a kid is then always one whose
// publisher's compare-and-set succeeded after it: the key's stage.
func (m *Manager) advance(ctx context.Context, next store.SigningKey, sent events.Type) error {
	_, err := m.st.UpdateKey(ctx, next)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return errRelist
	case !errors.Is(err, store.ErrConflict):
		return fmt.Errorf("keys: update %s after %s: %w", next.KID, sent, err)
	}
	return m.restate(ctx, next.KID, sent)
}

// restate publishes kid's current stage and pins it (see advance).
func (m *Manager) restate(ctx context.Context, kid string, sent events.Type) error {
	for range restateAttempts {
		cur, err := reread(ctx, m.st, kid)
		if errors.Is(err, store.ErrNotFound) {
			return errRelist
		}
		if err != nil {
			return fmt.Errorf("keys: re-read %s: %w", kid, err)
		}
		p := m.stateEvent(cur)
		if p == nil {
			return errRelist // not announced: no stage to state yet
		}
		m.log.Info("key event raced another replica; restating the key's stage",
			zap.String("kid", kid), zap.String("sent", string(sent)), zap.String("state", string(cur.State)))
		id := events.DeterministicID(p.EventType(), kid, strconv.FormatInt(cur.Version, 10), "restate")
		if err := m.publish(ctx, id, p); err != nil {
			return err
		}
		_, err = m.st.UpdateKey(ctx, cur)
		switch {
		case err == nil, errors.Is(err, store.ErrNotFound):
			return errRelist
		case !errors.Is(err, store.ErrConflict):
			return fmt.Errorf("keys: pin %s: %w", kid, err)
		}
	}
	m.log.Error("key still contended after restating; the key stream may misstate it until its next step",
		zap.String("kid", kid))
	return fmt.Errorf("keys: restate %s: %w", kid, store.ErrConflict)
}

// stateEvent returns the event that states k's current stage on the key
// stream, or nil for a key not announced yet.
func (m *Manager) stateEvent(k store.SigningKey) events.Payload {
	p := m.parse(k)
	switch k.State {
	case store.KeyPublished:
		if !announced(k) || p.err != nil {
			return nil
		}
		return &events.KeyPublished{KID: k.KID, Alg: k.Alg, Thumbprint: p.thumbprint, NotBefore: k.ActivateAt.Unix(), JWKSURI: m.cfg.JWKSURI}
	case store.KeyActive, store.KeyRetiring:
		if p.err != nil {
			return nil
		}
		return &events.KeyActivated{KID: k.KID, Alg: k.Alg, Thumbprint: p.thumbprint}
	case store.KeyRetired:
		return &events.KeyRetired{KID: k.KID}
	case store.KeyRevoked:
		return &events.KeyRevoked{KID: k.KID}
	}
	return nil
}

// Rotate creates a successor now, published at once and signing from
// PublishLeadTime later (at once if no key is active), and returns its kid.
// A successor already pending is superseded: it never signed and leaves
// JWKS. A publish failure is returned; the successor then stays unannounced
// and the next refresh of any replica announces it (with the full lead).
func (m *Manager) Rotate(ctx context.Context) (string, error) {
	return m.rotate(ctx, m.cfg.PublishLeadTime)
}

// RotateNow is Rotate for emergencies: the new key signs as soon as it is
// published and announced, and the current key retires. Tokens it signs may
// reach an edge before that edge refetched JWKS; edges refetch on an unknown
// kid. For a compromised key use Revoke.
func (m *Manager) RotateNow(ctx context.Context) (string, error) {
	return m.rotate(ctx, 0)
}

func (m *Manager) rotate(ctx context.Context, lead time.Duration) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Load first: the new key's CreatedAt must follow every key another
	// replica made or activated since this one last looked (createdAt).
	if err := m.reload(ctx); err != nil {
		return "", err
	}
	k, err := m.createKey(ctx)
	if err != nil {
		return "", err
	}
	if err := m.announce(ctx, k, lead); err != nil && !errors.Is(err, errRelist) {
		return k.KID, errors.Join(err, m.refreshLocked(ctx))
	}
	return k.KID, m.refreshLocked(ctx)
}

// Revoke marks a compromised key revoked at once — it leaves this replica's
// JWKS and signing before Revoke returns, and every other replica's on its
// next refresh — and publishes key.revoked, on which every edge rejects the
// key's tokens whatever their exp. If the key was the active one, a
// replacement is created, published and activated at once (emergency
// rotation). The key's private half is wiped from the store. It returns an
// error matching store.ErrNotFound for an unknown kid. A publish failure is
// returned too: the key is revoked in the store regardless, and every
// replica's refresh retries the event (and holds back the replacement, which
// cannot be announced either) until the stream takes it. Revoking a revoked
// key publishes its event again.
func (m *Manager) Revoke(ctx context.Context, kid, reason string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var (
		k         store.SigningKey
		wasActive bool
	)
	for attempt := 0; ; attempt++ {
		cur, err := reread(ctx, m.st, kid)
		if err != nil {
			return fmt.Errorf("keys: revoke %s: %w", kid, err)
		}
		if cur.State == store.KeyRevoked {
			k = cur
			break
		}
		next := cur
		next.State, next.RetireAt, next.Sealed, next.KEKID = store.KeyRevoked, time.Time{}, nil, ""
		k, err = m.st.UpdateKey(ctx, next)
		if err == nil {
			wasActive = cur.State == store.KeyActive
			m.log.Warn("signing key revoked", zap.String("kid", kid), zap.String("was", string(cur.State)),
				zap.String("reason", reason))
			break
		}
		if !errors.Is(err, store.ErrConflict) || attempt == 4 {
			return fmt.Errorf("keys: revoke %s: %w", kid, err)
		}
	}
	// Out of this replica's JWKS and signing now, before any network wait.
	if err := m.reload(ctx); err != nil {
		m.log.Warn("could not reload after revoking; the next refresh will", zap.Error(err))
	}
	pubErr := m.announceRevoked(ctx, k, reason)
	if errors.Is(pubErr, errRelist) {
		pubErr = nil
	}
	if wasActive {
		if _, err := m.createKey(ctx); err != nil {
			return errors.Join(pubErr, fmt.Errorf("keys: replacement for revoked %s: %w", kid, err))
		}
	}
	return errors.Join(pubErr, m.refreshLocked(ctx))
}
