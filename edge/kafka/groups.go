package kafka

// The group coordinator of Kafka's classic consumer group protocol: members
// join, the coordinator picks a leader and a protocol, the leader computes
// the assignment and hands it back in SyncGroup, heartbeats keep members
// alive. Membership lives in memory (clients rejoin after a restart, as
// they do after a coordinator moves in Kafka); committed offsets live in
// the log's metadata store (offsets.go).

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type groupState int

const (
	groupEmpty groupState = iota
	groupPreparingRebalance
	groupCompletingRebalance
	groupStable
)

// String is the state as DescribeGroups and ListGroups name it.
func (s groupState) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable"}[s]
}

// Session timeouts a member may ask for (Kafka's group.min/max.session.timeout.ms,
// with a lower minimum so that tests and small deployments can detect a dead
// member sooner).
const (
	minSessionTimeout = time.Second
	maxSessionTimeout = 30 * time.Minute
)

type coordinator struct {
	// initialDelay is how long a rebalance of an empty group waits for more
	// members (Kafka's group.initial.rebalance.delay.ms): members that
	// start together then join one generation instead of several.
	initialDelay time.Duration

	mu     sync.Mutex
	groups map[string]*group
}

type group struct {
	id           string
	state        groupState
	generation   int32
	protocolType string
	protocol     string
	leader       string
	members      map[string]*member
	static       map[string]string    // instance id → member id
	pending      map[string]time.Time // member ids handed out by MEMBER_ID_REQUIRED → expiry
	rebalance    *time.Timer
	// syncWait bounds CompletingRebalance: members that have not sent
	// their SyncGroup within the rebalance timeout are removed.
	syncWait *time.Timer
	initial  bool // the rebalance is an empty group's first: wait initialDelay
	// commits counts OffsetCommits checked against this generation and
	// still being stored: a new generation waits for them (nextGeneration).
	commits sync.WaitGroup
}

// nextGeneration starts the group's next generation, once the commits
// checked against the current one are stored: a member fenced by it must
// not store its offsets after the new generation's.
func (g *group) nextGeneration() {
	g.commits.Wait()
	g.generation++
}

type member struct {
	id, instanceID     string
	clientID, host     string
	protocolType       string
	protocols          []kmsg.JoinGroupRequestProtocol
	session, rebalance time.Duration
	assignment         []byte
	join               chan *kmsg.JoinGroupResponse // set while a JoinGroup waits
	sync               chan syncAnswer              // set while a SyncGroup waits
	synced             bool                         // sent its SyncGroup in this generation
	expiry             *time.Timer
}

type syncAnswer struct {
	code       int16
	assignment []byte
}

func newCoordinator() *coordinator {
	return &coordinator{initialDelay: 300 * time.Millisecond, groups: map[string]*group{}}
}

// get returns the group, creating it (Empty) when create is set.
func (co *coordinator) get(id string, create bool) *group {
	g := co.groups[id]
	if g == nil && create {
		g = &group{id: id, members: map[string]*member{}, static: map[string]string{}, pending: map[string]time.Time{}}
		co.groups[id] = g
	}
	return g
}

func newMemberID(clientID string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	if clientID == "" {
		clientID = "member"
	}
	return clientID + "-" + hex.EncodeToString(b[:])
}

// join handles a JoinGroup: it returns the answer at once (errors,
// MEMBER_ID_REQUIRED) or a channel the answer arrives on when the
// rebalance completes.
func (co *coordinator) join(r *kmsg.JoinGroupRequest, version int16, clientID, host string) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse) {
	resp := r.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.Generation = -1
	fail := func(code int16) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse) {
		resp.ErrorCode = code
		return resp, nil
	}
	session := time.Duration(r.SessionTimeoutMillis) * time.Millisecond
	rebalance := session
	if version >= 1 {
		rebalance = time.Duration(r.RebalanceTimeoutMillis) * time.Millisecond
	}
	switch {
	case r.Group == "":
		return fail(kerr.InvalidGroupID.Code)
	case session < minSessionTimeout || session > maxSessionTimeout:
		return fail(kerr.InvalidSessionTimeout.Code)
	case r.ProtocolType == "" || len(r.Protocols) == 0:
		return fail(kerr.InconsistentGroupProtocol.Code)
	}

	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.get(r.Group, true)
	if len(g.members) > 0 && g.protocolType != r.ProtocolType {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	instance := ""
	if r.InstanceID != nil {
		instance = *r.InstanceID
	}
	id := r.MemberID
	replaces := "" // the member a static rejoin takes the place of
	switch {
	case id == "" && instance != "":
		// A static member (re)joining: it takes its instance's place,
		// under a new member id; the old one is fenced once the join is
		// accepted (a refused join leaves the group as it was).
		id = newMemberID(clientID)
		replaces = g.static[instance]
	case id == "" && version >= 4:
		// KIP-394: the member must come back with the id it is given, so
		// that a client that retries its join does not leave ghosts.
		id = newMemberID(clientID)
		g.pending[id] = time.Now().Add(session)
		resp.MemberID = id
		return fail(kerr.MemberIDRequired.Code)
	case id == "":
		id = newMemberID(clientID)
	case instance != "" && g.static[instance] == "":
		// An instance the group does not know (its session expired, or
		// Spool restarted): as Kafka, UNKNOWN_MEMBER_ID, so that the
		// client forgets its member id and joins afresh. Fencing here would
		// lock it out for good.
		return fail(kerr.UnknownMemberID.Code)
	case instance != "" && g.static[instance] != id:
		return fail(kerr.FencedInstanceID.Code)
	case g.members[id] == nil:
		if exp, ok := g.pending[id]; !ok || time.Now().After(exp) {
			delete(g.pending, id)
			return fail(kerr.UnknownMemberID.Code)
		}
	}
	delete(g.pending, id)
	for k, exp := range g.pending {
		if time.Now().After(exp) {
			delete(g.pending, k)
		}
	}

	m, isNew := g.members[id], false
	if m == nil {
		m, isNew = &member{id: id, instanceID: instance}, true
		g.members[id] = m
	}
	previous := m.protocols
	m.protocols = r.Protocols
	if chooseProtocol(g) == "" {
		if isNew {
			delete(g.members, id)
		} else {
			m.protocols = previous
		}
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	if instance != "" && isNew {
		if replaces != "" {
			co.remove(g, replaces, kerr.FencedInstanceID.Code)
		}
		g.static[instance] = id
	}
	m.clientID, m.host, m.protocolType = clientID, host, r.ProtocolType
	m.session, m.rebalance = session, rebalance
	if m.expiry != nil {
		m.expiry.Stop() // a member waiting in a rebalance is bounded by the rebalance timeout
	}
	if m.join != nil {
		m.join <- co.joinError(g, m, kerr.UnknownMemberID.Code) // a retried join replaces the one waiting
	}
	m.join = make(chan *kmsg.JoinGroupResponse, 1)
	g.protocolType = r.ProtocolType
	if g.leader == "" {
		g.leader = id
	}
	wait := m.join // completing the join below answers on it and clears m.join
	co.prepareRebalance(g)
	co.maybeCompleteJoin(g)
	return nil, wait
}

func (co *coordinator) joinError(g *group, m *member, code int16) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.ErrorCode, resp.Generation, resp.MemberID = code, -1, m.id
	return resp
}

// chooseProtocol picks a protocol every member supports: each member
// votes for the first of its protocols that all support, and the most
// votes win (Kafka's rule; ties go to the first name). It returns "" when
// the members have no protocol in common.
func chooseProtocol(g *group) string {
	supported := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			supported[p.Name]++
		}
	}
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if supported[p.Name] == len(g.members) {
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for name, v := range votes {
		if best == "" || v > votes[best] || (v == votes[best] && name < best) {
			best = name
		}
	}
	return best
}

// prepareRebalance moves the group to PreparingRebalance and arms the
// rebalance timer: members that do not rejoin before it fires are removed.
func (co *coordinator) prepareRebalance(g *group) {
	if g.state == groupPreparingRebalance {
		return
	}
	if g.state == groupCompletingRebalance {
		for _, m := range g.members {
			if m.sync != nil {
				m.sync <- syncAnswer{code: kerr.RebalanceInProgress.Code}
				m.sync = nil
			}
		}
	}
	g.initial = g.state == groupEmpty
	g.state = groupPreparingRebalance
	wait := time.Duration(0)
	for _, m := range g.members {
		wait = max(wait, m.rebalance)
	}
	if g.initial {
		wait = min(wait, co.initialDelay)
	}
	co.armRebalance(g, wait)
}

func (co *coordinator) armRebalance(g *group, wait time.Duration) {
	if g.rebalance != nil {
		g.rebalance.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(wait, func() {
		co.mu.Lock()
		defer co.mu.Unlock()
		if g.rebalance == t && g.state == groupPreparingRebalance {
			g.initial = false
			co.completeJoin(g)
		}
	})
	g.rebalance = t
}

// maybeCompleteJoin completes the rebalance once every member has
// rejoined (an empty group's first rebalance waits out its delay).
func (co *coordinator) maybeCompleteJoin(g *group) {
	if g.state != groupPreparingRebalance || g.initial {
		return
	}
	for _, m := range g.members {
		if m.join == nil {
			return
		}
	}
	co.completeJoin(g)
}

// completeJoin starts the next generation with the members that rejoined
// and answers their JoinGroups: the leader gets every member's metadata.
func (co *coordinator) completeJoin(g *group) {
	if g.rebalance != nil {
		g.rebalance.Stop()
		g.rebalance = nil
	}
	for id, m := range g.members {
		if m.join == nil {
			co.remove(g, id, 0)
		}
	}
	g.nextGeneration()
	if len(g.members) == 0 {
		g.state, g.protocol, g.leader = groupEmpty, "", ""
		return
	}
	g.protocol = chooseProtocol(g)
	if g.members[g.leader] == nil {
		g.leader = ""
		for id := range g.members {
			if g.leader == "" || id < g.leader {
				g.leader = id
			}
		}
	}
	g.state = groupCompletingRebalance
	co.awaitSyncs(g)
	for _, m := range g.members {
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.Generation, resp.Protocol, resp.ProtocolType = g.generation, &g.protocol, &g.protocolType
		resp.LeaderID, resp.MemberID = g.leader, m.id
		if m.id == g.leader {
			for _, o := range g.members {
				jm := kmsg.NewJoinGroupResponseMember()
				jm.MemberID = o.id
				if o.instanceID != "" {
					jm.InstanceID = &o.instanceID
				}
				for _, p := range o.protocols {
					if p.Name == g.protocol {
						jm.ProtocolMetadata = p.Metadata
					}
				}
				resp.Members = append(resp.Members, jm)
			}
		}
		m.join <- resp
		m.join = nil
		co.heartbeatFrom(g, m)
	}
}

// awaitSyncs arms the group's wait for SyncGroups, as long as its longest
// rebalance timeout (Kafka's pending sync members): a leader that never
// sends its assignment must not leave the followers waiting forever.
func (co *coordinator) awaitSyncs(g *group) {
	wait := time.Duration(0)
	for _, m := range g.members {
		m.synced = false
		wait = max(wait, m.rebalance)
	}
	if g.syncWait != nil {
		g.syncWait.Stop()
	}
	generation := g.generation
	var t *time.Timer
	t = time.AfterFunc(wait, func() {
		co.mu.Lock()
		defer co.mu.Unlock()
		if g.syncWait != t || g.state != groupCompletingRebalance || g.generation != generation {
			return
		}
		g.syncWait = nil
		for id, m := range g.members {
			if !m.synced {
				co.remove(g, id, 0)
			}
		}
		if len(g.members) == 0 {
			g.state, g.protocol, g.leader = groupEmpty, "", ""
			g.nextGeneration()
			return
		}
		co.prepareRebalance(g)
	})
	g.syncWait = t
}

// remove takes a member out of the group; a join or sync it is waiting in
// is answered with code (UNKNOWN_MEMBER_ID when code is 0).
func (co *coordinator) remove(g *group, id string, code int16) {
	m := g.members[id]
	if m == nil {
		return
	}
	if code == 0 {
		code = kerr.UnknownMemberID.Code
	}
	if m.expiry != nil {
		m.expiry.Stop()
	}
	if m.join != nil {
		m.join <- co.joinError(g, m, code)
		m.join = nil
	}
	if m.sync != nil {
		m.sync <- syncAnswer{code: code}
		m.sync = nil
	}
	delete(g.members, id)
	if m.instanceID != "" && g.static[m.instanceID] == id {
		delete(g.static, m.instanceID)
	}
	if g.leader == id {
		g.leader = ""
	}
}

// removeAndRebalance removes a member and lets the others know through a
// rebalance (or empties the group).
func (co *coordinator) removeAndRebalance(g *group, id string) {
	co.remove(g, id, 0)
	switch {
	case len(g.members) == 0 && g.state != groupPreparingRebalance:
		g.state, g.protocol, g.leader = groupEmpty, "", ""
		g.nextGeneration()
	case g.state == groupPreparingRebalance:
		co.maybeCompleteJoin(g)
	default:
		co.prepareRebalance(g)
	}
}

// heartbeatFrom restarts a member's session timer.
func (co *coordinator) heartbeatFrom(g *group, m *member) {
	if m.expiry != nil {
		m.expiry.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(m.session, func() {
		co.mu.Lock()
		defer co.mu.Unlock()
		// A member waiting in a JoinGroup or a SyncGroup is alive (Kafka:
		// awaiting a rebalance satisfies the heartbeat); the rebalance
		// timeout bounds those waits instead.
		if g.members[m.id] == m && m.expiry == t && m.join == nil && m.sync == nil {
			co.removeAndRebalance(g, m.id)
		}
	})
	m.expiry = t
}

// member finds a member for SyncGroup, Heartbeat and OffsetCommit, checking
// its generation and static instance.
func (co *coordinator) member(g *group, id string, instance *string, generation int32) (*member, int16) {
	if g == nil {
		return nil, kerr.UnknownMemberID.Code
	}
	if instance != nil && *instance != "" {
		if cur, ok := g.static[*instance]; ok && cur != id {
			return nil, kerr.FencedInstanceID.Code
		}
	}
	m := g.members[id]
	if m == nil {
		return nil, kerr.UnknownMemberID.Code
	}
	if generation != g.generation {
		return nil, kerr.IllegalGeneration.Code
	}
	return m, 0
}

// sync handles a SyncGroup: the leader's assignment completes the
// rebalance; the other members wait for it.
func (co *coordinator) sync(r *kmsg.SyncGroupRequest) (syncAnswer, chan syncAnswer) {
	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.get(r.Group, false)
	m, code := co.member(g, r.MemberID, r.InstanceID, r.Generation)
	if code != 0 {
		return syncAnswer{code: code}, nil
	}
	if (r.ProtocolType != nil && *r.ProtocolType != g.protocolType) || (r.Protocol != nil && *r.Protocol != g.protocol) {
		return syncAnswer{code: kerr.InconsistentGroupProtocol.Code}, nil
	}
	co.heartbeatFrom(g, m)
	switch g.state {
	case groupPreparingRebalance:
		return syncAnswer{code: kerr.RebalanceInProgress.Code}, nil
	case groupStable:
		return syncAnswer{assignment: m.assignment}, nil
	}
	m.synced = true
	if m.id != g.leader {
		if m.sync != nil {
			m.sync <- syncAnswer{code: kerr.RebalanceInProgress.Code}
		}
		m.sync = make(chan syncAnswer, 1)
		return syncAnswer{}, m.sync
	}
	given := map[string][]byte{}
	for _, a := range r.GroupAssignment {
		given[a.MemberID] = a.MemberAssignment
	}
	for _, o := range g.members {
		o.assignment = given[o.id]
		if o.sync != nil {
			o.sync <- syncAnswer{assignment: o.assignment}
			o.sync = nil
		}
	}
	g.state = groupStable
	if g.syncWait != nil {
		g.syncWait.Stop()
		g.syncWait = nil
	}
	return syncAnswer{assignment: m.assignment}, nil
}

func (co *coordinator) heartbeat(r *kmsg.HeartbeatRequest) int16 {
	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.get(r.Group, false)
	m, code := co.member(g, r.MemberID, r.InstanceID, r.Generation)
	if code != 0 {
		return code
	}
	co.heartbeatFrom(g, m)
	if g.state == groupPreparingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	return 0
}

// leave removes members (by member id, or by instance id for static ones);
// it returns one code per member asked about, and the top-level code.
func (co *coordinator) leave(group string, ids []string, instances []*string) ([]int16, int16) {
	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.get(group, false)
	codes := make([]int16, len(ids))
	if g == nil {
		for i := range codes {
			codes[i] = kerr.UnknownMemberID.Code
		}
		return codes, kerr.UnknownMemberID.Code
	}
	top := int16(0)
	for i, id := range ids {
		if inst := instances[i]; inst != nil && *inst != "" {
			cur, ok := g.static[*inst]
			switch {
			case !ok:
				codes[i] = kerr.UnknownMemberID.Code
				continue
			case id != "" && cur != id:
				codes[i] = kerr.FencedInstanceID.Code
				continue
			}
			id = cur
		}
		if g.members[id] == nil {
			codes[i] = kerr.UnknownMemberID.Code
			continue
		}
		co.removeAndRebalance(g, id)
	}
	if len(ids) == 1 {
		top = codes[0]
	}
	return codes, top
}

// commit stores a group's committed offsets with store if an OffsetCommit
// may store them now: a member of the current generation, or (generation
// -1) an admin or standalone consumer of a group without members. It
// answers the request's error code. The member is checked under the lock,
// and the store (a metadata fsync) runs after it, so that one slow commit
// does not hold up every group's heartbeats; the next generation waits
// for it (nextGeneration), as Kafka orders them under the group lock.
func (co *coordinator) commit(group, memberID string, instance *string, generation int32, version int16, store func() error) int16 {
	co.mu.Lock()
	g := co.get(group, false)
	code := int16(0)
	switch {
	case generation < 0 && memberID == "":
		if g != nil && len(g.members) > 0 {
			code = kerr.UnknownMemberID.Code
		}
	case g == nil && generation < 0:
		// A group the coordinator does not know, not managed by it.
	case g == nil:
		// A member's commit to a group the coordinator does not know (it
		// expired, or Spool restarted): Kafka's answers, by version.
		code = kerr.IllegalGeneration.Code
		if version >= 9 {
			code = kerr.GroupIDNotFound.Code
		}
	default:
		if _, code = co.member(g, memberID, instance, generation); code == 0 && g.state == groupCompletingRebalance {
			code = kerr.RebalanceInProgress.Code
		}
	}
	if code != 0 {
		co.mu.Unlock()
		return code
	}
	if g != nil {
		g.commits.Add(1)
		defer g.commits.Done()
	}
	co.mu.Unlock()
	if err := store(); err != nil {
		return kerr.CoordinatorNotAvailable.Code
	}
	return 0
}

// groupView is a snapshot of a group for DescribeGroups and ListGroups.
type groupView struct {
	state                  groupState
	protocolType, protocol string
	members                []memberView
}

type memberView struct {
	id, instanceID, clientID, host string
	metadata, assignment           []byte
}

func (co *coordinator) view(id string) (groupView, bool) {
	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.groups[id]
	if g == nil {
		return groupView{}, false
	}
	v := groupView{state: g.state, protocolType: g.protocolType, protocol: g.protocol}
	for _, m := range g.members {
		mv := memberView{id: m.id, instanceID: m.instanceID, clientID: m.clientID, host: m.host}
		if g.state == groupStable {
			mv.assignment = m.assignment
		}
		for _, p := range m.protocols {
			if p.Name == g.protocol {
				mv.metadata = p.Metadata
			}
		}
		v.members = append(v.members, mv)
	}
	return v, true
}

func (co *coordinator) names() []string {
	co.mu.Lock()
	defer co.mu.Unlock()
	out := make([]string, 0, len(co.groups))
	for id := range co.groups {
		out = append(out, id)
	}
	return out
}

// drop forgets an empty group; it reports false if the group has members.
func (co *coordinator) drop(id string) bool {
	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.groups[id]
	if g != nil && (len(g.members) > 0 || g.state != groupEmpty) {
		return false
	}
	delete(co.groups, id)
	return true
}

// close answers every waiting join and sync: the coordinator is going
// away (Kafka's NOT_COORDINATOR makes clients look for it again).
func (co *coordinator) close() {
	co.mu.Lock()
	defer co.mu.Unlock()
	for _, g := range co.groups {
		if g.rebalance != nil {
			g.rebalance.Stop()
		}
		for _, m := range g.members {
			if m.expiry != nil {
				m.expiry.Stop()
			}
			if m.join != nil {
				m.join <- co.joinError(g, m, kerr.NotCoordinator.Code)
				m.join = nil
			}
			if m.sync != nil {
				m.sync <- syncAnswer{code: kerr.NotCoordinator.Code}
				m.sync = nil
			}
		}
	}
}
