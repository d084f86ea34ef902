package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

func openTestMeta(t *testing.T, path string) *Meta {
	t.Helper()
	m, err := OpenMeta(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() }) // closing twice is harmless
	return m
}

func reopenTestMeta(t *testing.T, m *Meta, path string) *Meta {
	t.Helper()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	return openTestMeta(t, path)
}

// rawUpdate changes the database behind Meta's back, to plant what an older
// or newer Spool, or a damaged disk, could leave.
func rawUpdate(t *testing.T, path string, fn func(tx *bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func sameOffset(a, b CommittedOffset) bool {
	return a.Offset == b.Offset && a.LeaderEpoch == b.LeaderEpoch &&
		a.Metadata == b.Metadata && a.CommitTime.Equal(b.CommitTime)
}

func TestMetaTopicsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	m := openTestMeta(t, path)

	orders := DefaultTopicConfig()
	readings := DefaultTopicConfig()
	readings.Partitions = 12
	readings.Sync = SyncInterval
	readings.SyncInterval = 250 * time.Millisecond
	readings.Retention = -1
	readings.CleanupPolicy = CleanupCompactDelete
	readings.Preallocate = false
	for name, cfg := range map[string]TopicConfig{"orders": orders, "sensor.readings": readings} {
		if err := m.PutTopic(name, cfg); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.PutTopic("a/b", orders); err == nil || !strings.Contains(err.Error(), `"a/b"`) {
		t.Errorf("PutTopic with an invalid name: err = %v, want one naming the topic", err)
	}

	m = reopenTestMeta(t, m, path)
	got, err := m.LoadTopics()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]TopicConfig{"orders": orders, "sensor.readings": readings}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("LoadTopics after reopen = %+v, want %+v", got, want)
	}

	if err := m.DeleteTopic("orders"); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteTopic("never-existed"); err != nil {
		t.Fatalf("DeleteTopic of an unknown topic: %v", err)
	}
	m = reopenTestMeta(t, m, path)
	got, err = m.LoadTopics()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["orders"]; ok || len(got) != 1 {
		t.Fatalf("LoadTopics after DeleteTopic = %v, want only sensor.readings", got)
	}
}

// A field missing from stored JSON (added by a later version of
// TopicConfig) must read as its default, not as a zero value.
func TestMetaTopicMissingFieldGetsDefault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	openTestMeta(t, path).Close()
	rawUpdate(t, path, func(tx *bbolt.Tx) error {
		return tx.Bucket(metaBucketTopics).Put([]byte("old"), []byte(`{"partitions":3}`))
	})
	topics, err := openTestMeta(t, path).LoadTopics()
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultTopicConfig()
	want.Partitions = 3
	if topics["old"] != want {
		t.Fatalf("LoadTopics = %+v, want %+v", topics["old"], want)
	}
}

func TestMetaOffsetsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	m := openTestMeta(t, path)

	now := time.UnixMilli(time.Now().UnixMilli()) // what millisecond storage keeps
	g1 := map[TopicPartition]CommittedOffset{
		{"orders", 0}:          {Offset: 42, LeaderEpoch: 3, Metadata: "host-a", CommitTime: now},
		{"orders", 1}:          {Offset: 0, LeaderEpoch: -1, CommitTime: now},
		{"orders", 1 << 30}:    {Offset: 1<<62 + 5, LeaderEpoch: 0, Metadata: "ünïcode\x00bytes"},
		{"sensor.readings", 7}: {Offset: -1, LeaderEpoch: -1, Metadata: strings.Repeat("m", 4096), CommitTime: now},
	}
	g2 := map[TopicPartition]CommittedOffset{
		{"orders", 0}: {Offset: 7, LeaderEpoch: 1, CommitTime: now.Add(-time.Hour)},
	}
	if err := m.CommitOffsets("billing", g1); err != nil {
		t.Fatal(err)
	}
	if err := m.CommitOffsets("group with spaces/and:punctuation ✓", g2); err != nil {
		t.Fatal(err)
	}
	// A later commit overwrites only the partitions it names.
	g1[TopicPartition{"orders", 0}] = CommittedOffset{Offset: 43, LeaderEpoch: 3, Metadata: "host-b", CommitTime: now}
	if err := m.CommitOffsets("billing", map[TopicPartition]CommittedOffset{{"orders", 0}: g1[TopicPartition{"orders", 0}]}); err != nil {
		t.Fatal(err)
	}

	m = reopenTestMeta(t, m, path)
	for group, want := range map[string]map[TopicPartition]CommittedOffset{"billing": g1, "group with spaces/and:punctuation ✓": g2} {
		got, err := m.FetchOffsets(group)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("FetchOffsets(%q) = %v, want %v", group, got, want)
		}
		for tp, w := range want {
			if !sameOffset(got[tp], w) {
				t.Errorf("FetchOffsets(%q)[%v] = %+v, want %+v", group, tp, got[tp], w)
			}
			o, ok, err := m.FetchOffset(group, tp)
			if err != nil || !ok || !sameOffset(o, w) {
				t.Errorf("FetchOffset(%q, %v) = %+v, %v, %v, want %+v, true, nil", group, tp, o, ok, err, w)
			}
		}
	}
	if o, _, _ := m.FetchOffset("billing", TopicPartition{"orders", 1 << 30}); !o.CommitTime.IsZero() {
		t.Errorf("a zero CommitTime read back as %v", o.CommitTime)
	}
	if _, ok, err := m.FetchOffset("billing", TopicPartition{"orders", 2}); ok || err != nil {
		t.Errorf("FetchOffset of an uncommitted partition = %v, %v, want false, nil", ok, err)
	}
	groups, err := m.Groups()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"billing", "group with spaces/and:punctuation ✓"}; fmt.Sprint(groups) != fmt.Sprint(want) {
		t.Errorf("Groups() = %q, want %q", groups, want)
	}
}

func TestMetaFetchUnknownGroup(t *testing.T) {
	m := openTestMeta(t, filepath.Join(t.TempDir(), "meta.db"))
	got, err := m.FetchOffsets("nobody")
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("FetchOffsets of an unknown group = %v, %v, want an empty map and nil", got, err)
	}
	if _, ok, err := m.FetchOffset("nobody", TopicPartition{"t", 0}); ok || err != nil {
		t.Errorf("FetchOffset of an unknown group = %v, %v, want false, nil", ok, err)
	}
	if err := m.DeleteGroup("nobody"); err != nil {
		t.Errorf("DeleteGroup of an unknown group: %v", err)
	}
	if err := m.DeleteOffsets("nobody", []TopicPartition{{"t", 0}}); err != nil {
		t.Errorf("DeleteOffsets of an unknown group: %v", err)
	}
	if groups, err := m.Groups(); err != nil || len(groups) != 0 {
		t.Errorf("Groups() = %q, %v, want none", groups, err)
	}
}

func TestMetaOffsetsRefuseBadInput(t *testing.T) {
	m := openTestMeta(t, filepath.Join(t.TempDir(), "meta.db"))
	one := map[TopicPartition]CommittedOffset{{"t", 0}: {Offset: 1}}

	if err := m.CommitOffsets("", one); err == nil {
		t.Error("CommitOffsets with an empty group succeeded")
	}
	if _, err := m.FetchOffsets(""); err == nil {
		t.Error("FetchOffsets with an empty group succeeded")
	}
	if _, _, err := m.FetchOffset("", TopicPartition{"t", 0}); err == nil {
		t.Error("FetchOffset with an empty group succeeded")
	}
	if err := m.DeleteOffsets("", nil); err == nil {
		t.Error("DeleteOffsets with an empty group succeeded")
	}
	if err := m.DeleteGroup(""); err == nil {
		t.Error("DeleteGroup with an empty group succeeded")
	}

	// All or nothing: one bad partition stores none of the batch.
	for _, bad := range []TopicPartition{{"t", -1}, {"a/b", 0}, {"", 0}} {
		batch := map[TopicPartition]CommittedOffset{{"t", 0}: {Offset: 1}, {"t", 1}: {Offset: 2}, bad: {Offset: 3}}
		err := m.CommitOffsets("g", batch)
		if err == nil || !strings.Contains(err.Error(), `group "g"`) {
			t.Errorf("CommitOffsets with %v: err = %v, want one naming the group", bad, err)
		}
	}
	if got, err := m.FetchOffsets("g"); err != nil || len(got) != 0 {
		t.Errorf("after refused commits FetchOffsets = %v, %v, want nothing stored", got, err)
	}
	if err := m.CommitOffsets("g", nil); err != nil {
		t.Errorf("CommitOffsets of nothing: %v", err)
	}
	if groups, _ := m.Groups(); len(groups) != 0 {
		t.Errorf("an empty commit created groups %q", groups)
	}
}

func TestMetaDeleteTopicRemovesItsOffsetsOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	m := openTestMeta(t, path)
	for _, name := range []string{"a", "ab", "a.b", "a_b", "b"} {
		if err := m.PutTopic(name, DefaultTopicConfig()); err != nil {
			t.Fatal(err)
		}
	}
	commit := func(group string, tps ...TopicPartition) {
		t.Helper()
		offsets := make(map[TopicPartition]CommittedOffset)
		for i, tp := range tps {
			offsets[tp] = CommittedOffset{Offset: int64(i + 1)}
		}
		if err := m.CommitOffsets(group, offsets); err != nil {
			t.Fatal(err)
		}
	}
	// Topic "a" is a prefix of "ab", and partition numbers whose bytes
	// would match a longer name are included.
	commit("g1", TopicPartition{"a", 0}, TopicPartition{"a", 1}, TopicPartition{"a", 0x62}, TopicPartition{"ab", 0},
		TopicPartition{"a.b", 0}, TopicPartition{"a_b", 3}, TopicPartition{"b", 0})
	commit("g2", TopicPartition{"a", 5})
	commit("g3", TopicPartition{"b", 1})

	if err := m.DeleteTopic("a"); err != nil {
		t.Fatal(err)
	}
	m = reopenTestMeta(t, m, path)
	got, err := m.FetchOffsets("g1")
	if err != nil {
		t.Fatal(err)
	}
	want := []TopicPartition{{"ab", 0}, {"a.b", 0}, {"a_b", 3}, {"b", 0}}
	if len(got) != len(want) {
		t.Fatalf("g1 after DeleteTopic(a) = %v, want %v", got, want)
	}
	for _, tp := range want {
		if _, ok := got[tp]; !ok {
			t.Errorf("g1 lost %v", tp)
		}
	}
	// g2 had offsets for "a" only, so it is gone.
	groups, err := m.Groups()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(groups) != "[g1 g3]" {
		t.Errorf("Groups() = %q, want [g1 g3]", groups)
	}
	if got, _ := m.FetchOffsets("g3"); len(got) != 1 {
		t.Errorf("g3 = %v, want its offset for b/1", got)
	}
}

func TestMetaDeleteOffsetsAndGroups(t *testing.T) {
	m := openTestMeta(t, filepath.Join(t.TempDir(), "meta.db"))
	offsets := map[TopicPartition]CommittedOffset{{"t", 0}: {Offset: 1}, {"t", 1}: {Offset: 2}, {"u", 0}: {Offset: 3}}
	for _, g := range []string{"zeta", "alpha", "Mid", "alpha2"} {
		if err := m.CommitOffsets(g, offsets); err != nil {
			t.Fatal(err)
		}
	}
	groups, err := m.Groups()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(groups) != "[Mid alpha alpha2 zeta]" {
		t.Errorf("Groups() = %q, want sorted [Mid alpha alpha2 zeta]", groups)
	}

	if err := m.DeleteOffsets("alpha", []TopicPartition{{"t", 1}, {"never", 9}}); err != nil {
		t.Fatal(err)
	}
	got, _ := m.FetchOffsets("alpha")
	if _, ok := got[TopicPartition{"t", 1}]; ok || len(got) != 2 {
		t.Errorf("after DeleteOffsets alpha = %v, want t/0 and u/0", got)
	}
	if err := m.DeleteOffsets("alpha", []TopicPartition{{"t", 0}, {"u", 0}}); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteGroup("zeta"); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.FetchOffsets("zeta"); len(got) != 0 {
		t.Errorf("after DeleteGroup zeta = %v", got)
	}
	if groups, _ := m.Groups(); fmt.Sprint(groups) != "[Mid alpha2]" {
		t.Errorf("Groups() = %q, want [Mid alpha2]: emptied and deleted groups are gone", groups)
	}
}

func TestMetaSchemaVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	openTestMeta(t, path).Close()

	readVersion := func() []byte {
		t.Helper()
		var v []byte
		rawUpdate(t, path, func(tx *bbolt.Tx) error {
			v = bytes.Clone(tx.Bucket(metaBucketMeta).Get(metaKeySchemaVersion))
			return nil
		})
		return v
	}
	if v := readVersion(); !bytes.Equal(v, binary.BigEndian.AppendUint32(nil, metaSchemaVersion)) {
		t.Fatalf("stored schema version = %x, want %d", v, metaSchemaVersion)
	}
	// The same version opens again.
	openTestMeta(t, path).Close()

	newer := binary.BigEndian.AppendUint32(nil, metaSchemaVersion+1)
	rawUpdate(t, path, func(tx *bbolt.Tx) error {
		return tx.Bucket(metaBucketMeta).Put(metaKeySchemaVersion, newer)
	})
	_, err := OpenMeta(path)
	if err == nil {
		t.Fatal("OpenMeta of a newer schema version succeeded")
	}
	for _, want := range []string{fmt.Sprintf("schema version %d", metaSchemaVersion+1), fmt.Sprintf("version %d", metaSchemaVersion)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if v := readVersion(); !bytes.Equal(v, newer) {
		t.Errorf("refused open changed the schema version to %x", v)
	}

	for _, bad := range [][]byte{{1}, {0, 0, 0, 0}} {
		rawUpdate(t, path, func(tx *bbolt.Tx) error {
			return tx.Bucket(metaBucketMeta).Put(metaKeySchemaVersion, bad)
		})
		if _, err := OpenMeta(path); err == nil {
			t.Errorf("OpenMeta with schema version bytes %x succeeded", bad)
		}
	}
}

func TestMetaSecondOpenFailsInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	m := openTestMeta(t, path)

	start := time.Now()
	m2, err := OpenMeta(path)
	if err == nil {
		m2.Close()
		t.Fatal("second OpenMeta of an open database succeeded")
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("second OpenMeta took %v to fail", elapsed)
	}
	if !strings.Contains(err.Error(), "in use") || !errors.Is(err, berrors.ErrTimeout) {
		t.Errorf("second OpenMeta: err = %v, want an 'in use' error wrapping bbolt's timeout", err)
	}

	// Once the first is closed, the database opens.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	openTestMeta(t, path)
}

func TestMetaConcurrentCommits(t *testing.T) {
	m := openTestMeta(t, filepath.Join(t.TempDir(), "meta.db"))
	const writers, commits = 8, 25
	errs := make(chan error, writers+1) // each goroutine sends at most once
	var writersWG, readerWG sync.WaitGroup
	for w := range writers {
		writersWG.Go(func() {
			for i := range commits {
				// Each writer owns a partition of a shared group's topic
				// and also commits to a group of its own.
				err := m.CommitOffsets("shared", map[TopicPartition]CommittedOffset{
					{"t", int32(w)}: {Offset: int64(i), Metadata: fmt.Sprint("writer ", w)},
				})
				if err == nil {
					err = m.CommitOffsets(fmt.Sprint("own-", w), map[TopicPartition]CommittedOffset{
						{"t", 0}: {Offset: int64(i)}, {"t", 1}: {Offset: int64(i)},
					})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// A reader running alongside must only ever see whole commits.
	done := make(chan struct{})
	readerWG.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			for w := range writers {
				got, err := m.FetchOffsets(fmt.Sprint("own-", w))
				if err != nil {
					errs <- err
					return
				}
				if got[TopicPartition{"t", 0}] != got[TopicPartition{"t", 1}] {
					errs <- fmt.Errorf("reader saw half a commit: %v", got)
					return
				}
			}
		}
	})
	writersWG.Wait()
	close(done)
	readerWG.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	got, err := m.FetchOffsets("shared")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != writers {
		t.Fatalf("shared has %d partitions, want %d", len(got), writers)
	}
	for w := range writers {
		want := CommittedOffset{Offset: commits - 1, Metadata: fmt.Sprint("writer ", w)}
		if o := got[TopicPartition{"t", int32(w)}]; !sameOffset(o, want) {
			t.Errorf("t/%d = %+v, want %+v", w, o, want)
		}
	}
}

func TestMetaCorruptValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	m := openTestMeta(t, path)
	if err := m.CommitOffsets("g", map[TopicPartition]CommittedOffset{{"t", 0}: {Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	m.Close()

	good := metaEncodeOffset(CommittedOffset{Offset: 1, Metadata: "abc"})
	rawUpdate(t, path, func(tx *bbolt.Tx) error {
		offsets := tx.Bucket(metaBucketOffsets)
		g := offsets.Bucket([]byte("g"))
		if err := g.Put(metaOffsetKey(TopicPartition{"t", 1}), []byte("garbage")); err != nil {
			return err
		}
		if err := g.Put(metaOffsetKey(TopicPartition{"t", 2}), good[:len(good)-1]); err != nil {
			return err
		}
		bad, err := offsets.CreateBucket([]byte("badkey"))
		if err != nil {
			return err
		}
		if err := bad.Put([]byte("no-separator"), good); err != nil {
			return err
		}
		return tx.Bucket(metaBucketTopics).Put([]byte("t"), []byte("{not json"))
	})

	m = openTestMeta(t, path)
	for _, p := range []int32{1, 2} {
		if _, ok, err := m.FetchOffset("g", TopicPartition{"t", p}); err == nil || ok {
			t.Errorf("FetchOffset of corrupt t/%d = %v, %v, want an error", p, ok, err)
		}
	}
	if o, ok, err := m.FetchOffset("g", TopicPartition{"t", 0}); err != nil || !ok || o.Offset != 1 {
		t.Errorf("FetchOffset of intact t/0 = %+v, %v, %v", o, ok, err)
	}
	if _, err := m.FetchOffsets("g"); err == nil || !strings.Contains(err.Error(), `group "g"`) {
		t.Errorf("FetchOffsets over corrupt values: err = %v, want one naming the group", err)
	}
	if _, err := m.FetchOffsets("badkey"); err == nil {
		t.Error("FetchOffsets over a malformed key succeeded")
	}
	if _, err := m.LoadTopics(); err == nil || !strings.Contains(err.Error(), `topic "t"`) {
		t.Errorf("LoadTopics over corrupt JSON: err = %v, want one naming the topic", err)
	}
}

// FuzzMetaDecodeOffset checks that no input panics the decoder and that
// whatever it accepts encodes back to the same bytes. Its seeds run as part
// of go test.
func FuzzMetaDecodeOffset(f *testing.F) {
	good := metaEncodeOffset(CommittedOffset{Offset: 99, LeaderEpoch: 4, Metadata: "meta", CommitTime: time.UnixMilli(1700000000123)})
	for i := range good {
		f.Add(good[:i])
	}
	f.Add(good)
	f.Add(append(bytes.Clone(good), 'x'))
	f.Add(metaEncodeOffset(CommittedOffset{}))
	f.Add([]byte{2, 0, 0})
	huge := bytes.Clone(good)
	binary.BigEndian.PutUint32(huge[21:], 0xffffffff)
	f.Add(huge)
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := metaDecodeOffset(b)
		if err != nil {
			return
		}
		if again := metaEncodeOffset(o); !bytes.Equal(again, b) {
			t.Fatalf("decoded %x as %+v, which encodes as %x", b, o, again)
		}
	})
}

func TestMetaOffsetKeyRoundTrip(t *testing.T) {
	for _, tp := range []TopicPartition{{"t", 0}, {"orders", 1<<31 - 1}, {"a.b_c-d", 256}} {
		got, err := metaDecodeOffsetKey(metaOffsetKey(tp))
		if err != nil || got != tp {
			t.Errorf("key of %v decodes as %v, %v", tp, got, err)
		}
	}
	for _, k := range [][]byte{nil, {0, 0, 0, 0, 0}, []byte("t\x01\x00\x00\x00\x00"), []byte("t\x00\x80\x00\x00\x00")} {
		if tp, err := metaDecodeOffsetKey(k); err == nil {
			t.Errorf("malformed key %q decoded as %v", k, tp)
		}
	}
}

func TestMetaCursors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	m := openTestMeta(t, path)

	if err := m.PutCursor("bridge", "upstream/orders/0", []byte{0, 0, 0, 42}); err != nil {
		t.Fatal(err)
	}
	batch := map[string][]byte{"pos": []byte("12345"), "empty": {}, "nil": nil}
	if err := m.PutCursors("sensor:greenhouse", batch); err != nil {
		t.Fatal(err)
	}
	if err := m.PutCursor("other", "pos", []byte("other namespace")); err != nil {
		t.Fatal(err)
	}

	m = reopenTestMeta(t, m, path)
	v, ok, err := m.GetCursor("bridge", "upstream/orders/0")
	if err != nil || !ok || !bytes.Equal(v, []byte{0, 0, 0, 42}) {
		t.Fatalf("GetCursor = %x, %v, %v", v, ok, err)
	}
	// The slice is the caller's: changing it changes nothing stored.
	v[3] = 99
	if v, _, _ := m.GetCursor("bridge", "upstream/orders/0"); v[3] != 42 {
		t.Fatalf("mutating a returned cursor changed the stored one to %x", v)
	}
	for _, k := range []string{"empty", "nil"} {
		if v, ok, err := m.GetCursor("sensor:greenhouse", k); err != nil || !ok || v == nil || len(v) != 0 {
			t.Errorf("GetCursor of empty value %q = %v, %v, %v, want an empty non-nil slice, true", k, v, ok, err)
		}
	}
	if _, ok, err := m.GetCursor("sensor:greenhouse", "missing"); ok || err != nil {
		t.Errorf("GetCursor of a missing key = %v, %v, want false, nil", ok, err)
	}
	if _, ok, err := m.GetCursor("no-such-namespace", "pos"); ok || err != nil {
		t.Errorf("GetCursor in a missing namespace = %v, %v, want false, nil", ok, err)
	}

	all, err := m.Cursors("sensor:greenhouse")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || string(all["pos"]) != "12345" {
		t.Fatalf("Cursors = %q", all)
	}
	all["pos"][0] = 'X'
	if all, _ := m.Cursors("sensor:greenhouse"); string(all["pos"]) != "12345" {
		t.Fatalf("mutating a listed cursor changed the stored one to %q", all["pos"])
	}

	if err := m.DeleteCursor("sensor:greenhouse", "pos"); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteCursor("sensor:greenhouse", "pos"); err != nil {
		t.Errorf("deleting a missing cursor: %v", err)
	}
	if err := m.DeleteCursor("no-such-namespace", "pos"); err != nil {
		t.Errorf("deleting in a missing namespace: %v", err)
	}
	m = reopenTestMeta(t, m, path)
	if all, err := m.Cursors("sensor:greenhouse"); err != nil || len(all) != 2 {
		t.Errorf("Cursors after delete = %q, %v, want empty and nil only", all, err)
	}
	if v, _, _ := m.GetCursor("other", "pos"); string(v) != "other namespace" {
		t.Errorf("another namespace's cursor is %q", v)
	}
	if all, err := m.Cursors("no-such-namespace"); err != nil || all == nil || len(all) != 0 {
		t.Errorf("Cursors of a missing namespace = %v, %v, want an empty map", all, err)
	}
}

func TestMetaCursorsRefuseBadInput(t *testing.T) {
	m := openTestMeta(t, filepath.Join(t.TempDir(), "meta.db"))
	if err := m.PutCursor("", "k", nil); err == nil {
		t.Error("PutCursor with an empty namespace succeeded")
	}
	if err := m.PutCursor("ns", "", nil); err == nil {
		t.Error("PutCursor with an empty key succeeded")
	}
	if err := m.PutCursors("", nil); err == nil {
		t.Error("PutCursors with an empty namespace succeeded")
	}
	// All or nothing: a bad key stores none of the batch.
	if err := m.PutCursors("ns", map[string][]byte{"a": {1}, "": {2}}); err == nil {
		t.Error("PutCursors with an empty key succeeded")
	}
	if err := m.PutCursors("ns", map[string][]byte{"a": {1}, strings.Repeat("k", bbolt.MaxKeySize+1): {2}}); err == nil {
		t.Error("PutCursors with an overlong key succeeded")
	}
	if all, err := m.Cursors("ns"); err != nil || len(all) != 0 {
		t.Errorf("after refused puts Cursors = %q, %v, want nothing stored", all, err)
	}
	if _, _, err := m.GetCursor("", "k"); err == nil {
		t.Error("GetCursor with an empty namespace succeeded")
	}
	if err := m.DeleteCursor("ns", ""); err == nil {
		t.Error("DeleteCursor with an empty key succeeded")
	}
	if _, err := m.Cursors(""); err == nil {
		t.Error("Cursors with an empty namespace succeeded")
	}
}

func TestMetaApplyCursors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	m := openTestMeta(t, path)
	if err := m.PutCursor("a", "gone", []byte("x")); err != nil {
		t.Fatal(err)
	}
	err := m.ApplyCursors([]CursorChange{
		{NS: "a", Key: "k1", Value: []byte("v1")},
		{NS: "b", Key: "k2", Value: []byte("v2")},
		{NS: "a", Key: "gone", Delete: true},
		{NS: "missing", Key: "x", Delete: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	m = reopenTestMeta(t, m, path)
	a, _ := m.Cursors("a")
	b, _ := m.Cursors("b")
	if len(a) != 1 || string(a["k1"]) != "v1" || len(b) != 1 || string(b["k2"]) != "v2" {
		t.Fatalf("after ApplyCursors: a=%q b=%q", a, b)
	}
	// A bad change refuses the whole set.
	if err := m.ApplyCursors([]CursorChange{{NS: "a", Key: "k3", Value: []byte("v")}, {NS: "", Key: "k"}}); err == nil {
		t.Fatal("ApplyCursors with an empty namespace succeeded")
	}
	if _, ok, _ := m.GetCursor("a", "k3"); ok {
		t.Fatal("a refused ApplyCursors stored part of its changes")
	}
}
