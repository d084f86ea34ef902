package bridge

import (
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// upstreamHooks tell the link whether the upstream answers. kgo retries
// connection failures internally and, with idempotency, does not fail
// records whose outcome it cannot know, so an outage would otherwise be
// visible only as a lack of progress. The hooks give Health the real error.
type upstreamHooks struct{ k *KafkaLink }

var (
	_ kgo.HookBrokerConnect = upstreamHooks{}
	_ kgo.HookBrokerE2E     = upstreamHooks{}
)

// OnBrokerConnect sees dial and handshake (ApiVersions, SASL) failures.
func (h upstreamHooks) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		h.k.noteUpstream(err)
	}
}

// OnBrokerE2E sees every request: a success means the upstream answers.
func (h upstreamHooks) OnBrokerE2E(_ kgo.BrokerMetadata, _ int16, e2e kgo.BrokerE2E) {
	h.k.noteUpstream(e2e.Err())
}

// noteUpstream records the outcome of one exchange with the upstream.
func (k *KafkaLink) noteUpstream(err error) {
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	if err == nil {
		k.upOKAt = now
		return
	}
	k.upErr, k.upErrAt = err, now
}
