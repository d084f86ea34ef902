package mqtt

import (
	"crypto/sha256"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/spoolmq/spool/edge/config"
	"golang.org/x/crypto/bcrypt"
)

// authHook checks user names and bcrypt password hashes on CONNECT and
// the users' ACL rules on every publish, subscribe and delivery. mochi
// refuses every client unless some hook allows it, so this hook is always
// installed: with anonymous access on and no users it allows everyone.
type authHook struct {
	mqtt.HookBase
	anonymous bool
	anonACL   []config.ACLRule
	users     map[string]config.User

	// verified remembers passwords that matched, by a hash of user and
	// password, so that reconnecting devices do not each pay for bcrypt
	// (tens of milliseconds on a Pi).
	verified sync.Map // [32]byte → struct{}
	failures atomic.Int64
	denied   atomic.Int64

	// sessionUser reports the user a client id's session (connected, or
	// kept for a persistent client) belongs to.
	sessionUser func(clientID string) (user string, ok bool)
	// refuse answers a CONNACK with an error code (OnConnect refusals).
	refuse func(cl *mqtt.Client, code packets.Code)
	lg     *slog.Logger
}

func newAuthHook(anonymous bool, ac config.AuthConfig) *authHook {
	h := &authHook{anonymous: anonymous, anonACL: ac.AnonymousACL, users: map[string]config.User{}}
	for _, u := range ac.Users {
		h.users[u.Name] = u
	}
	return h
}

func (h *authHook) ID() string { return "spool-auth" }

func (h *authHook) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

// OnConnect refuses a will its user may not publish, with CONNACK "not
// authorized" as mosquitto does: mochi publishes a will itself when the
// connection ends, past every ACL. (It runs before OnConnectAuthenticate;
// a wrong password is refused there either way.)
func (h *authHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if !pk.Connect.WillFlag || h.allowed(cl, pk.Connect.WillTopic, true) {
		return nil
	}
	h.lg.Warn("refusing a connection: its will's topic is not allowed to its user",
		"client", pk.Connect.ClientIdentifier, "user", string(pk.Connect.Username), "will_topic", pk.Connect.WillTopic)
	if h.refuse != nil {
		h.refuse(cl, packets.ErrNotAuthorized)
	}
	return packets.ErrNotAuthorized
}

// OnConnectAuthenticate checks the user, and that the client id's session,
// if there is one, is that user's: mochi hands a session over to whoever
// connects with its client id, queued messages included, which would let
// one user read what another's ACL allowed (or throw its device off).
func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if !h.authenticate(pk) {
		return false
	}
	name := string(pk.Connect.Username)
	if h.sessionUser != nil {
		if owner, ok := h.sessionUser(pk.Connect.ClientIdentifier); ok && owner != name {
			h.failures.Add(1)
			h.lg.Warn("refusing a connection: the client id's session belongs to another user",
				"client", pk.Connect.ClientIdentifier, "user", name, "session_user", owner)
			return false
		}
	}
	return true
}

func (h *authHook) authenticate(pk packets.Packet) bool {
	name := string(pk.Connect.Username)
	if name == "" {
		if !h.anonymous {
			h.failures.Add(1)
		}
		return h.anonymous
	}
	u, ok := h.users[name]
	if !ok {
		h.failures.Add(1)
		return false
	}
	sum := sha256.Sum256(append(append([]byte(name), 0), pk.Connect.Password...))
	if _, ok := h.verified.Load(sum); ok {
		return true
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), pk.Connect.Password) != nil {
		h.failures.Add(1)
		return false
	}
	h.verified.Store(sum, struct{}{})
	return true
}

// OnACLCheck is asked with a topic filter for subscriptions and a topic
// name for deliveries. Publishes pass here: mochi would answer a refused
// one at once, ahead of the acknowledgements still waiting for the log,
// so the ingest hook asks mayPublish and answers in turn.
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if write {
		return true
	}
	filter, ok := aclFilter(topic)
	if !ok {
		h.denied.Add(1)
		return false
	}
	return h.allowed(cl, filter, false)
}

// aclFilter is the filter ACL rules judge a subscription by: a shared
// subscription's ($share/{group}/{filter}) is its filter, since that is
// what it receives. ok is false for a malformed shared subscription.
// mochi matches the prefix without regard to case, and so does this.
func aclFilter(filter string) (string, bool) {
	first, rest, _ := strings.Cut(filter, "/")
	if !strings.EqualFold(first, mqtt.SharePrefix) {
		return filter, true
	}
	group, f, ok := strings.Cut(rest, "/")
	if !ok || group == "" || f == "" {
		return "", false
	}
	return f, true
}

// mayPublish reports whether cl may publish to topic.
func (h *authHook) mayPublish(cl *mqtt.Client, topic string) bool {
	return h.allowed(cl, topic, true)
}

// allowed applies cl's ACL rules; a rule allows a filter only if it covers
// every topic the filter can match.
func (h *authHook) allowed(cl *mqtt.Client, topic string, write bool) bool {
	rules := h.anonACL
	if name := string(cl.Properties.Username); name != "" {
		u, ok := h.users[name]
		if !ok {
			h.denied.Add(1)
			return false
		}
		rules = u.ACL
	}
	if len(rules) == 0 {
		return true
	}
	for _, r := range rules {
		if (write && r.Access == "read") || (!write && r.Access == "write") {
			continue
		}
		if covers(r.Filter, topic) {
			return true
		}
	}
	h.denied.Add(1)
	return false
}
