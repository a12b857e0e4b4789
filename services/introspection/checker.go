package introspection

import (
	"time"

	"go.uber.org/zap"

	"github.com/valetauth/valet/pkg/edge"
)

// GCPercent is the GOGC a host of the service should run with unless the
// environment sets one. The live heap is small (client cache, a verified-
// token cache) while every request allocates about 10 KB, mostly in
// net/http and go-redis; at the default of 100 the collector runs many
// times a second at full load. 400 keeps the heap in the tens of megabytes
// and saves about a tenth of the CPU per request (docs/introspection.md).
const GCPercent = 400

// CheckerObserver returns the observer a host gives the token checker
// (edge.CheckerConfig.Observer): failed JWKS fetches and key-stream errors
// are logged as warnings, learned keys at info. Key events are rare, and the
// checker retries with backoff, so the log volume stays small.
func CheckerObserver(log *zap.Logger) edge.Observer {
	return edge.Observer{
		OnJWKSFetch: func(took time.Duration, err error) {
			if err != nil {
				log.Warn("JWKS fetch failed or incomplete; retrying", zap.Duration("took", took), zap.Error(err))
			}
		},
		OnKeyLearned: func(kid string, eventTime time.Time) {
			log.Info("signing key learned", zap.String("kid", kid), zap.Duration("since_event", time.Since(eventTime)))
		},
		OnStreamError: func(stream string, err error) {
			log.Warn("key stream consumer error", zap.String("stream", stream), zap.Error(err))
		},
	}
}
