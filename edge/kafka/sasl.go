package kafka

import (
	"bytes"
	"errors"
	"slices"

	"github.com/spoolmq/spool/edge/config"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/crypto/bcrypt"
)

// Credentials are what a user may authenticate with.
type Credentials struct {
	// BcryptHash checks SASL/PLAIN passwords (and MQTT ones).
	BcryptHash string
	// SCRAM holds stored credentials by mechanism (SCRAM-SHA-256, -512).
	SCRAM map[string]config.SCRAMCredential
}

const mechPlain = "PLAIN"

// mechanisms lists the SASL mechanisms some user can use.
func (s *Server) mechanisms() []string {
	set := map[string]bool{}
	for _, c := range s.opts.Users {
		if c.BcryptHash != "" {
			set[mechPlain] = true
		}
		for m := range c.SCRAM {
			set[m] = true
		}
	}
	out := make([]string, 0, len(set))
	for m := range set {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

// saslConversation is one connection's authentication in progress.
type saslConversation struct {
	mech  string
	scram *scramConv
	raw   bool // a v0 handshake: tokens come as bare frames, not SaslAuthenticate
}

func (s *Server) saslHandshake(cs *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.SASLHandshakeRequest)
	resp := r.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = s.mechanisms()
	switch {
	case cs.authed && cs.user != "":
		resp.ErrorCode = kerr.IllegalSaslState.Code // no re-authentication
	case !slices.Contains(resp.SupportedMechanisms, r.Mechanism):
		// A failed authentication, as Kafka counts it: the connection is
		// closed after the answer, which lists the mechanisms to use.
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		cs.closeAfter = true
		s.stats.AuthFailures.Add(1)
		s.lg.Warn("Kafka authentication failed", "remote", cs.c.RemoteAddr().String(), "error", "unsupported SASL mechanism", "mechanism", r.Mechanism)
	default:
		cs.sasl = &saslConversation{mech: r.Mechanism, raw: req.version == 0}
		if h, ok := config.SCRAMHashes[r.Mechanism]; ok {
			cs.sasl.scram = &scramConv{h: h, lookup: s.scramLookup(r.Mechanism)}
		}
	}
	return resp
}

func (s *Server) scramLookup(mech string) func(string) (config.SCRAMCredential, bool) {
	return func(user string) (config.SCRAMCredential, bool) {
		c, ok := s.opts.Users[user].SCRAM[mech]
		return c, ok
	}
}

// saslAuthenticate checks one step of the client's authentication. A
// failure is answered, counted and logged (never the password), and the
// connection is closed after the answer, as Kafka does.
func (s *Server) saslAuthenticate(cs *connState, req *request) kmsg.Response {
	r := req.body.(*kmsg.SASLAuthenticateRequest)
	resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	if cs.sasl == nil || cs.sasl.raw || cs.authed && cs.user != "" {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		resp.SASLAuthBytes = []byte{}
		cs.closeAfter = true
		return resp
	}
	out, err := s.saslStep(cs, r.SASLAuthBytes)
	resp.SASLAuthBytes = out
	if err != nil {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		resp.ErrorMessage = errMessage(errors.New("authentication failed"))
		cs.closeAfter = true
	}
	return resp
}

// saslStep takes one token of the conversation and returns the answer.
// The error is only for the log: clients are told "authentication failed".
func (s *Server) saslStep(cs *connState, token []byte) ([]byte, error) {
	conv := cs.sasl
	fail := func(user string, err error) ([]byte, error) {
		cs.sasl = nil
		s.stats.AuthFailures.Add(1)
		s.lg.Warn("Kafka authentication failed", "remote", cs.c.RemoteAddr().String(), "user", user, "error", err)
		return []byte{}, err
	}
	if conv.mech == mechPlain {
		cs.sasl = nil
		// authzid NUL user NUL password
		parts := bytes.Split(token, []byte{0})
		if len(parts) != 3 {
			return fail("", errors.New("malformed PLAIN message"))
		}
		user, pass := string(parts[1]), parts[2]
		c, ok := s.opts.Users[user]
		if !ok || c.BcryptHash == "" || bcrypt.CompareHashAndPassword([]byte(c.BcryptHash), pass) != nil {
			return fail(user, errors.New("wrong user name or password"))
		}
		if len(parts[0]) > 0 && string(parts[0]) != user {
			return fail(user, errors.New("authorization identity differs from the user"))
		}
		s.authenticated(cs, user)
		return []byte{}, nil
	}
	out, err := conv.scram.next(string(token))
	if err != nil {
		return fail(conv.scram.user, err)
	}
	if conv.scram.done {
		cs.sasl = nil
		s.authenticated(cs, conv.scram.user)
	}
	return []byte(out), nil
}

func (s *Server) authenticated(cs *connState, user string) {
	cs.authed, cs.user = true, user
	s.lg.Debug("Kafka client authenticated", "remote", cs.c.RemoteAddr().String(), "user", user)
}
