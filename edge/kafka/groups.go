package kafka

// The group coordinator of Kafka's classic consumer group protocol: members
// join, the coordinator picks a leader and a protocol, the leader computes
// the assignment and hands it back in SyncGroup, heartbeats keep members
// alive. Membership lives in memory (clients rejoin after a restart, as
// they do after a coordinator moves in Kafka); committed offsets live in
// the log's metadata store (offsets.go).

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"slices"
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

// newMemberID makes a member id. A static member's starts with its
// instance id, as Kafka's do: clients that cannot be told they lead the
// group after a restart (JoinGroup before v9) recognise their own
// instance in the leader id.
func newMemberID(clientID, instance string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	prefix := instance
	if prefix == "" {
		prefix = clientID
	}
	if prefix == "" {
		prefix = "member"
	}
	return prefix + "-" + hex.EncodeToString(b[:])
}

// joinRequest is a JoinGroup with what the coordinator takes from its
// connection and version.
type joinRequest struct {
	r                        *kmsg.JoinGroupRequest
	version                  int16
	instance, clientID, host string
	session, rebalance       time.Duration
}

// join handles a JoinGroup: it returns the answer at once (errors,
// MEMBER_ID_REQUIRED, a rejoin that changes nothing) or a channel the
// answer arrives on when the rebalance completes.
func (co *coordinator) join(r *kmsg.JoinGroupRequest, version int16, clientID, host string) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse) {
	jr := joinRequest{r: r, version: version, clientID: clientID, host: host}
	jr.session = time.Duration(r.SessionTimeoutMillis) * time.Millisecond
	jr.rebalance = jr.session
	if version >= 1 {
		jr.rebalance = time.Duration(r.RebalanceTimeoutMillis) * time.Millisecond
	}
	if r.InstanceID != nil {
		jr.instance = *r.InstanceID
	}
	switch {
	case r.Group == "":
		return joinFailure(r, kerr.InvalidGroupID.Code)
	case jr.session < minSessionTimeout || jr.session > maxSessionTimeout:
		return joinFailure(r, kerr.InvalidSessionTimeout.Code)
	case r.ProtocolType == "" || len(r.Protocols) == 0:
		return joinFailure(r, kerr.InconsistentGroupProtocol.Code)
	}

	co.mu.Lock()
	defer co.mu.Unlock()
	g := co.get(r.Group, true)
	if len(g.members) > 0 && g.protocolType != r.ProtocolType {
		return joinFailure(r, kerr.InconsistentGroupProtocol.Code)
	}
	id := r.MemberID
	switch {
	case id == "" && jr.instance != "" && g.static[jr.instance] != "":
		return co.restartStatic(g, jr)
	case id == "" && jr.instance != "":
		return co.addMember(g, jr, newMemberID(clientID, jr.instance))
	case id == "" && version >= 4:
		// KIP-394: the member must come back with the id it is given, so
		// that a client that retries its join does not leave ghosts.
		id = newMemberID(clientID, "")
		g.pending[id] = time.Now().Add(jr.session)
		resp, _ := joinFailure(r, kerr.MemberIDRequired.Code)
		resp.MemberID = id
		return resp, nil
	case id == "":
		return co.addMember(g, jr, newMemberID(clientID, ""))
	case jr.instance != "" && g.static[jr.instance] == "":
		// An instance the group does not know (its session expired, or
		// Spool restarted): as Kafka, UNKNOWN_MEMBER_ID, so that the
		// client forgets its member id and joins afresh. Fencing here would
		// lock it out for good.
		return joinFailure(r, kerr.UnknownMemberID.Code)
	case jr.instance != "" && g.static[jr.instance] != id:
		return joinFailure(r, kerr.FencedInstanceID.Code)
	case g.members[id] != nil:
		return co.rejoinMember(g, g.members[id], jr)
	}
	exp, ok := g.pending[id]
	if !ok || time.Now().After(exp) {
		delete(g.pending, id)
		return joinFailure(r, kerr.UnknownMemberID.Code)
	}
	return co.addMember(g, jr, id)
}

func joinFailure(r *kmsg.JoinGroupRequest, code int16) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse) {
	resp := r.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.ErrorCode, resp.Generation = code, -1
	return resp, nil
}

// addMember takes a new member into the group, which rebalances for it.
func (co *coordinator) addMember(g *group, jr joinRequest, id string) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse) {
	if chooseProtocol(g, id, jr.r.Protocols) == "" {
		return joinFailure(jr.r, kerr.InconsistentGroupProtocol.Code)
	}
	g.prunePending(id)
	m := &member{id: id, instanceID: jr.instance}
	g.members[id] = m
	if jr.instance != "" {
		g.static[jr.instance] = id
	}
	return nil, co.awaitJoin(g, m, jr)
}

// rejoinMember handles a JoinGroup of a current member (Kafka's
// doCurrentMemberJoinGroup). A member that lost the answer to its join
// asks again with the same protocols: it gets the current generation
// back, without a rebalance that would stop every other member. Changed
// protocols, or a JoinGroup from the leader of a Stable group (its way to
// have the group reassigned, when the topics it consumes change), start a
// rebalance.
func (co *coordinator) rejoinMember(g *group, m *member, jr joinRequest) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse) {
	unchanged := sameProtocols(m.protocols, jr.r.Protocols)
	if unchanged && (g.state == groupCompletingRebalance || g.state == groupStable && m.id != g.leader) {
		co.heartbeatFrom(g, m)
		return co.joinAnswer(g, m, g.leader, m.id == g.leader), nil
	}
	if chooseProtocol(g, m.id, jr.r.Protocols) == "" {
		return joinFailure(jr.r, kerr.InconsistentGroupProtocol.Code)
	}
	g.prunePending("")
	return nil, co.awaitJoin(g, m, jr)
}

// restartStatic handles a JoinGroup without a member id from a static
// instance the group knows: its process restarted. The instance takes its
// place under a new member id, and the old one is fenced. In a Stable
// group whose protocol it does not change, it keeps its assignment
// without a rebalance (KIP-345): the other members go on consuming. In
// CompletingRebalance the leader may be assigning partitions to the old
// member id, which would leave the new one without any: the group
// rebalances, as Kafka's does.
func (co *coordinator) restartStatic(g *group, jr joinRequest) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse) {
	oldID := g.static[jr.instance]
	protocol := chooseProtocol(g, oldID, jr.r.Protocols)
	if protocol == "" {
		return joinFailure(jr.r, kerr.InconsistentGroupProtocol.Code) // a refused join leaves the group as it was
	}
	g.prunePending("")
	leader := g.leader
	m := co.replaceStatic(g, oldID, newMemberID(jr.clientID, jr.instance))
	if g.state != groupStable || protocol != g.protocol {
		return nil, co.awaitJoin(g, m, jr)
	}
	co.update(g, m, jr)
	co.heartbeatFrom(g, m)
	if m.id == g.leader && jr.version >= 9 {
		// KIP-814: the restarted leader learns that it leads, and that it
		// must not assign: a Stable group keeps its assignment.
		resp := co.joinAnswer(g, m, g.leader, true)
		resp.SkipAssignment = true
		return resp, nil
	}
	// Older clients get the leader id from before the restart: a
	// restarted leader that saw its own id would compute an assignment
	// that a Stable group never hands out.
	return co.joinAnswer(g, m, leader, false), nil
}

// replaceStatic moves a static member to a new member id: the new member
// takes over its protocols, assignment and leadership; a join or sync the
// old one waits in is answered FENCED_INSTANCE_ID, as are its later
// requests.
func (co *coordinator) replaceStatic(g *group, oldID, newID string) *member {
	old := g.members[oldID]
	m := &member{id: newID, instanceID: old.instanceID, protocols: old.protocols, assignment: old.assignment}
	leads := g.leader == oldID
	co.remove(g, oldID, kerr.FencedInstanceID.Code)
	g.members[newID] = m
	g.static[m.instanceID] = newID
	if leads {
		g.leader = newID
	}
	return m
}

// update takes a joining member's protocols, client and timeouts.
func (co *coordinator) update(g *group, m *member, jr joinRequest) {
	m.protocols = jr.r.Protocols
	m.clientID, m.host, m.protocolType = jr.clientID, jr.host, jr.r.ProtocolType
	m.session, m.rebalance = jr.session, jr.rebalance
	g.protocolType = jr.r.ProtocolType
}

// awaitJoin updates a member from its JoinGroup and has it wait for the
// rebalance, which it starts if none is under way.
func (co *coordinator) awaitJoin(g *group, m *member, jr joinRequest) chan *kmsg.JoinGroupResponse {
	co.update(g, m, jr)
	if m.expiry != nil {
		m.expiry.Stop() // a member waiting in a rebalance is bounded by the rebalance timeout
	}
	if m.join != nil {
		m.join <- co.joinError(g, m, kerr.UnknownMemberID.Code) // a retried join replaces the one waiting
	}
	m.join = make(chan *kmsg.JoinGroupResponse, 1)
	if g.leader == "" {
		g.leader = m.id
	}
	wait := m.join // completing the join below answers on it and clears m.join
	co.prepareRebalance(g)
	co.maybeCompleteJoin(g)
	return wait
}

// prunePending forgets the member id handed out by MEMBER_ID_REQUIRED that
// is now joining (if any), and those that expired unused.
func (g *group) prunePending(joining string) {
	delete(g.pending, joining)
	for k, exp := range g.pending {
		if time.Now().After(exp) {
			delete(g.pending, k)
		}
	}
}

// sameProtocols reports whether a member rejoins with the protocols, and
// their metadata, it joined with (Kafka's MemberMetadata.matches).
func sameProtocols(a, b []kmsg.JoinGroupRequestProtocol) bool {
	return slices.EqualFunc(a, b, func(x, y kmsg.JoinGroupRequestProtocol) bool {
		return x.Name == y.Name && bytes.Equal(x.Metadata, y.Metadata)
	})
}

func (co *coordinator) joinError(g *group, m *member, code int16) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.ErrorCode, resp.Generation, resp.MemberID = code, -1, m.id
	return resp
}

// joinAnswer is a successful JoinGroup answer in the current generation;
// withMembers adds every member's metadata, which the leader assigns from.
func (co *coordinator) joinAnswer(g *group, m *member, leader string, withMembers bool) *kmsg.JoinGroupResponse {
	// Copies: the answer is encoded after the coordinator's lock is released.
	protocol, protocolType := g.protocol, g.protocolType
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Generation, resp.Protocol, resp.ProtocolType = g.generation, &protocol, &protocolType
	resp.LeaderID, resp.MemberID = leader, m.id
	if !withMembers {
		return resp
	}
	for _, o := range g.members {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID = o.id
		if o.instanceID != "" {
			jm.InstanceID = &o.instanceID
		}
		jm.ProtocolMetadata = o.metadata(g.protocol)
		resp.Members = append(resp.Members, jm)
	}
	return resp
}

// metadata is the member's metadata for the protocol (nil if it does not
// support it).
func (m *member) metadata(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

// chooseProtocol picks a protocol every member supports: each member
// votes for the first of its protocols that all support, and the most
// votes win (Kafka's rule; ties go to the first name). The member with
// id votes with protocols instead of its own (it may be joining, or
// replaced by a restarted static instance); id "" leaves the members as
// they are. It returns "" when the members have no protocol in common.
func chooseProtocol(g *group, id string, protocols []kmsg.JoinGroupRequestProtocol) string {
	sets := make([][]kmsg.JoinGroupRequestProtocol, 0, len(g.members)+1)
	for mid, m := range g.members {
		if mid != id {
			sets = append(sets, m.protocols)
		}
	}
	if id != "" {
		sets = append(sets, protocols)
	}
	supported := map[string]int{}
	for _, ps := range sets {
		for _, p := range ps {
			supported[p.Name]++
		}
	}
	votes := map[string]int{}
	for _, ps := range sets {
		for _, p := range ps {
			if supported[p.Name] == len(sets) {
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
	g.protocol = chooseProtocol(g, "", nil)
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
		resp := co.joinAnswer(g, m, g.leader, m.id == g.leader)
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
// A transactional commit (TxnOffsetCommit) is not refused while the group
// completes a rebalance: as in Kafka, the group's state is not enforced
// for it, only its member and generation.
func (co *coordinator) commit(group, memberID string, instance *string, generation int32, version int16, txn bool, store func() error) int16 {
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
		if _, code = co.member(g, memberID, instance, generation); code == 0 && g.state == groupCompletingRebalance && !txn {
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
		mv.metadata = m.metadata(g.protocol)
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
