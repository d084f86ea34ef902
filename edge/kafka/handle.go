package kafka

import (
	"reflect"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handler answers one request; a nil response means none is sent.
type handler func(s *Server, cs *connState, req *request) kmsg.Response

// apis lists the requests Spool answers and the versions it speaks: the
// ranges kgo, librdkafka 2.x and the Java client negotiate, up to the
// versions before topic ids replace topic names (Produce v13, Fetch v13),
// which a broker without topic ids cannot serve.
var apis map[kmsg.Key]api

type api struct {
	min, max int16
	h        handler
}

// Set in init: apiVersions, one of the handlers, lists apis.
func init() { apis = apiTable() }

func apiTable() map[kmsg.Key]api {
	return map[kmsg.Key]api{
		kmsg.ApiVersions:             {0, 3, (*Server).apiVersions},
		kmsg.Metadata:                {0, 12, (*Server).metadata},
		kmsg.Produce:                 {3, 11, (*Server).produce},
		kmsg.Fetch:                   {4, 12, (*Server).fetch},
		kmsg.ListOffsets:             {1, 7, (*Server).listOffsets},
		kmsg.OffsetForLeaderEpoch:    {2, 4, (*Server).offsetForLeaderEpoch},
		kmsg.InitProducerID:          {0, 4, (*Server).initProducerID},
		kmsg.FindCoordinator:         {0, 4, (*Server).findCoordinator},
		kmsg.CreateTopics:            {2, 7, (*Server).createTopics},
		kmsg.DeleteTopics:            {1, 6, (*Server).deleteTopics},
		kmsg.CreatePartitions:        {0, 3, (*Server).createPartitions},
		kmsg.DeleteRecords:           {0, 2, (*Server).deleteRecords},
		kmsg.DescribeConfigs:         {0, 4, (*Server).describeConfigs},
		kmsg.AlterConfigs:            {0, 2, (*Server).alterConfigs},
		kmsg.IncrementalAlterConfigs: {0, 1, (*Server).incrementalAlterConfigs},
		kmsg.DescribeCluster:         {0, 1, (*Server).describeCluster},
		kmsg.JoinGroup:               {0, 9, (*Server).joinGroup},
		kmsg.SyncGroup:               {0, 5, (*Server).syncGroup},
		kmsg.Heartbeat:               {0, 4, (*Server).heartbeat},
		kmsg.LeaveGroup:              {0, 5, (*Server).leaveGroup},
		kmsg.OffsetCommit:            {0, 9, (*Server).offsetCommit},
		kmsg.OffsetFetch:             {0, 8, (*Server).offsetFetch},
		kmsg.DescribeGroups:          {0, 5, (*Server).describeGroups},
		kmsg.ListGroups:              {0, 4, (*Server).listGroups},
		kmsg.DeleteGroups:            {0, 2, (*Server).deleteGroups},
		kmsg.OffsetDelete:            {0, 0, (*Server).offsetDelete},
		// Transactions, up to the versions before KIP-890's server-side
		// checks (AddPartitionsToTxn v4 is for brokers, EndTxn v5 bumps
		// epochs at every end).
		kmsg.AddPartitionsToTxn:   {0, 3, (*Server).addPartitionsToTxn},
		kmsg.AddOffsetsToTxn:      {0, 3, (*Server).addOffsetsToTxn},
		kmsg.EndTxn:               {0, 3, (*Server).endTxn},
		kmsg.TxnOffsetCommit:      {0, 3, (*Server).txnOffsetCommit},
		kmsg.DescribeTransactions: {0, 0, (*Server).describeTransactions},
		kmsg.ListTransactions:     {0, 1, (*Server).listTransactions},
		// After a v0 handshake the SASL tokens come as bare frames
		// (conn.go); librdkafka needs v0 listed to use SASL at all.
		kmsg.SASLHandshake:    {0, 1, (*Server).saslHandshake},
		kmsg.SASLAuthenticate: {0, 2, (*Server).saslAuthenticate},
	}
}

// handle answers req. A request Spool does not serve, or at a version it
// does not speak, gets its response with UNSUPPORTED_VERSION in every
// error code, never a dropped connection.
func (s *Server) handle(cs *connState, req *request) kmsg.Response {
	api, ok := apis[kmsg.Key(req.key)]
	if req.key == kmsg.ApiVersions.Int16() && req.version > api.max {
		// KIP-511: answer at v0 with the versions, so the client retries
		// with one both sides speak.
		resp := s.apiVersions(cs, req).(*kmsg.ApiVersionsResponse)
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		req.version = 0
		return resp
	}
	if !ok || req.version < api.min || req.version > api.max {
		return unsupported(req)
	}
	return api.h(s, cs, req)
}

func (s *Server) apiVersions(_ *connState, req *request) kmsg.Response {
	resp := req.body.ResponseKind().(*kmsg.ApiVersionsResponse)
	for k, api := range apis {
		resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: k.Int16(), MinVersion: api.min, MaxVersion: api.max})
	}
	return resp
}

// unsupported builds req's (empty) response with its error code set to
// UNSUPPORTED_VERSION: every request kmsg can decode gets an answer the
// client can read.
func unsupported(req *request) kmsg.Response {
	resp := req.body.ResponseKind()
	resp.SetVersion(req.version)
	setErrorCodes(reflect.ValueOf(resp).Elem(), kerr.UnsupportedVersion.Code)
	return resp
}

// setErrorCodes sets every ErrorCode field of v, and of the structs in
// its slices, to code.
func setErrorCodes(v reflect.Value, code int16) {
	if v.Kind() != reflect.Struct {
		return
	}
	if f := v.FieldByName("ErrorCode"); f.IsValid() && f.Kind() == reflect.Int16 {
		f.SetInt(int64(code))
	}
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Slice {
			for j := range f.Len() {
				setErrorCodes(f.Index(j), code)
			}
		}
	}
}
