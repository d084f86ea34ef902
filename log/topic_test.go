package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func ttTopicDirs(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, topicsDir))
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func ttExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestTopicCreateListDelete(t *testing.T) {
	r := newHKRig(t, 0)
	if got := r.l.Topics(); len(got) != 0 {
		t.Fatalf("new log has topics %v", got)
	}
	cfg := hkConfig()
	cfg.Partitions = 2
	orders := r.create("orders", cfg)
	r.create("metrics.cpu", hkConfig())
	r.create("A-b_c", hkConfig())
	if got, want := r.l.Topics(), []string{"A-b_c", "metrics.cpu", "orders"}; !slices.Equal(got, want) {
		t.Fatalf("topics %v, want %v", got, want)
	}
	if got, want := ttTopicDirs(t, r.dir), []string{"A-b_c", "metrics.cpu", "orders"}; !slices.Equal(got, want) {
		t.Fatalf("topic directories %v, want %v", got, want)
	}
	for _, p := range []string{"orders/0", "orders/1", "metrics.cpu/0"} {
		if !ttExists(filepath.Join(r.dir, topicsDir, p)) {
			t.Errorf("partition directory %s missing", p)
		}
	}
	if got, err := r.l.Topic("orders"); err != nil || got != orders || got.Name() != "orders" || got.NumPartitions() != 2 {
		t.Fatalf("Topic(orders) = %v %v", got, err)
	}

	// Duplicates, unknown topics and partitions.
	other := hkConfig()
	other.Partitions = 5
	if _, err := r.l.CreateTopic("orders", other); !errors.Is(err, ErrTopicExists) {
		t.Errorf("duplicate create: %v, want ErrTopicExists", err)
	}
	if orders.NumPartitions() != 2 || orders.Config() != cfg {
		t.Errorf("duplicate create changed the topic: %d partitions, %+v", orders.NumPartitions(), orders.Config())
	}
	if _, err := r.l.Topic("nope"); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("Topic(nope): %v, want ErrUnknownTopic", err)
	}
	if err := r.l.DeleteTopic("nope"); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("DeleteTopic(nope): %v, want ErrUnknownTopic", err)
	}
	if err := r.l.AlterTopic("nope", hkConfig()); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("AlterTopic(nope): %v, want ErrUnknownTopic", err)
	}
	for _, i := range []int32{-1, 2, 100} {
		if _, err := orders.Partition(i); !errors.Is(err, ErrUnknownPartition) {
			t.Errorf("Partition(%d): %v, want ErrUnknownPartition", i, err)
		}
	}

	// Data and committed offsets, then delete.
	p0, p1 := hkPart(t, orders, 0), hkPart(t, orders, 1)
	hkFill(t, p0, 3, hkAt(hkT0))
	hkFill(t, p1, 2, hkAt(hkT0))
	co := func(o int64) CommittedOffset {
		return CommittedOffset{Offset: o, LeaderEpoch: -1, CommitTime: hkT0.UTC()}
	}
	meta := r.l.Meta()
	if err := meta.CommitOffsets("g1", map[TopicPartition]CommittedOffset{
		{"orders", 0}: co(3), {"orders", 1}: co(2), {"metrics.cpu", 0}: co(7),
	}); err != nil {
		t.Fatal(err)
	}
	if err := meta.CommitOffsets("g2", map[TopicPartition]CommittedOffset{{"orders", 0}: co(1)}); err != nil {
		t.Fatal(err)
	}
	usedBefore := r.l.UsedBytes()

	if err := r.l.DeleteTopic("orders"); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		if got, want := r.l.Topics(), []string{"A-b_c", "metrics.cpu"}; !slices.Equal(got, want) {
			t.Errorf("topics after delete %v, want %v", got, want)
		}
		if got, want := ttTopicDirs(t, r.dir), []string{"A-b_c", "metrics.cpu"}; !slices.Equal(got, want) {
			t.Errorf("topic directories after delete %v, want %v", got, want)
		}
		if _, err := r.l.Topic("orders"); !errors.Is(err, ErrUnknownTopic) {
			t.Errorf("Topic(orders) after delete: %v", err)
		}
		g1, err := r.l.Meta().FetchOffsets("g1")
		if err != nil || len(g1) != 1 || g1[TopicPartition{"metrics.cpu", 0}].Offset != 7 {
			t.Errorf("g1 offsets after deleting orders: %v %v, want only metrics.cpu/0 at 7", g1, err)
		}
		g2, err := r.l.Meta().FetchOffsets("g2")
		if err != nil || len(g2) != 0 {
			t.Errorf("g2 offsets after deleting orders: %v %v, want none", g2, err)
		}
		cfgs, err := r.l.Meta().LoadTopics()
		if _, ok := cfgs["orders"]; ok || err != nil || len(cfgs) != 2 {
			t.Errorf("meta.db topics after delete: %v %v", cfgs, err)
		}
	}
	check()
	if got := r.l.UsedBytes(); got != usedBefore-5*hkBatch {
		t.Errorf("used bytes after delete %d, want %d", got, usedBefore-5*hkBatch)
	}
	if _, err := p0.AppendRecords(hkSized(t, hkBatch, 0, "x"), DefaultBatchOptions); !errors.Is(err, ErrClosed) {
		t.Errorf("append to a deleted topic's partition: %v, want ErrClosed", err)
	}

	r.reopen()
	check()
	if _, err := r.l.CreateTopic("metrics.cpu", hkConfig()); !errors.Is(err, ErrTopicExists) {
		t.Errorf("create of a topic loaded from meta.db: %v, want ErrTopicExists", err)
	}
	// The name is free again, and the new topic starts empty.
	orders = r.create("orders", hkConfig())
	p := hkPart(t, orders, 0)
	if p.HighWatermark() != 0 || p.LogStartOffset() != 0 || p.Size() != 0 {
		t.Errorf("recreated topic: high watermark %d log start %d size %d", p.HighWatermark(), p.LogStartOffset(), p.Size())
	}
	if o, ok, err := r.l.Meta().FetchOffset("g1", TopicPartition{"orders", 0}); ok || err != nil {
		t.Errorf("recreated topic inherits committed offset %+v %v", o, err)
	}
}

func TestTopicInvalidNamesRefused(t *testing.T) {
	names := []string{"", ".", "..", "a/b", "../escape", "a b", "tab\there", "nul\x00", "ümlaut", "star*", "colon:x",
		strings.Repeat("x", 250)}
	r := newHKRig(t, 0)
	for _, name := range names {
		if _, err := r.l.CreateTopic(name, hkConfig()); err == nil || errors.Is(err, ErrTopicExists) {
			t.Errorf("CreateTopic(%q): %v, want a name error", name, err)
		}
	}
	if got := r.l.Topics(); len(got) != 0 {
		t.Errorf("topics %v after refused names", got)
	}
	if got := ttTopicDirs(t, r.dir); len(got) != 0 {
		t.Errorf("topic directories %v after refused names", got)
	}
	if ttExists(filepath.Join(r.dir, "escape")) {
		t.Errorf("a directory was created outside topics/")
	}
	// The longest legal name and every legal character are accepted.
	for _, name := range []string{strings.Repeat("x", 249), "azAZ09._-"} {
		if _, err := r.l.CreateTopic(name, hkConfig()); err != nil {
			t.Errorf("CreateTopic(%q): %v", name, err)
		}
	}
	// So is a valid name with an invalid config refused, leaving nothing.
	bad := []func(*TopicConfig){
		func(c *TopicConfig) { c.Partitions = 0 },
		func(c *TopicConfig) { c.SegmentBytes = 10 },
		func(c *TopicConfig) { c.OnFull = "explode" },
		func(c *TopicConfig) { c.CleanupPolicy = "shred" },
		func(c *TopicConfig) { c.DeleteRetention = -time.Second },
	}
	for i, mod := range bad {
		cfg := hkConfig()
		mod(&cfg)
		if _, err := r.l.CreateTopic(fmt.Sprintf("bad%d", i), cfg); err == nil {
			t.Errorf("invalid config %d accepted", i)
		}
	}
	if got := len(r.l.Topics()); got != 2 {
		t.Errorf("%d topics, want 2", got)
	}
	if got := len(ttTopicDirs(t, r.dir)); got != 2 {
		t.Errorf("%d topic directories, want 2", got)
	}
}

func TestTopicCollidingNamesRefused(t *testing.T) {
	cases := []struct{ first, second string }{
		{"a.b", "a_b"},
		{"a_b", "a.b"},
		{"x.y_z", "x_y.z"},
		{"metrics.cpu.load", "metrics_cpu_load"},
	}
	for _, tc := range cases {
		t.Run(tc.first+" then "+tc.second, func(t *testing.T) {
			r := newHKRig(t, 0)
			r.create(tc.first, hkConfig())
			for round := range 2 { // before and after a reopen
				_, err := r.l.CreateTopic(tc.second, hkConfig())
				if err == nil || errors.Is(err, ErrTopicExists) {
					t.Errorf("round %d: CreateTopic(%q) next to %q: %v, want a collision error", round, tc.second, tc.first, err)
				}
				if got := r.l.Topics(); !slices.Equal(got, []string{tc.first}) {
					t.Errorf("round %d: topics %v", round, got)
				}
				if got := ttTopicDirs(t, r.dir); !slices.Equal(got, []string{tc.first}) {
					t.Errorf("round %d: topic directories %v", round, got)
				}
				r.reopen()
			}
			// Once the first is deleted, the second name is free.
			if err := r.l.DeleteTopic(tc.first); err != nil {
				t.Fatal(err)
			}
			r.create(tc.second, hkConfig())
		})
	}
}

func TestTopicAlterPartitionsAndConfig(t *testing.T) {
	r := newHKRig(t, 0)
	cfg := hkConfig()
	cfg.Partitions = 2
	tp := r.create("grow", cfg)
	hkFill(t, hkPart(t, tp, 1), 2, hkAt(hkT0))

	// Shrinking is refused and changes nothing.
	for _, n := range []int32{1} {
		smaller := cfg
		smaller.Partitions = n
		smaller.Retention = time.Minute
		if err := r.l.AlterTopic("grow", smaller); err == nil {
			t.Errorf("shrinking to %d partitions accepted", n)
		}
	}
	if tp.NumPartitions() != 2 || tp.Config() != cfg {
		t.Fatalf("refused alter changed the topic: %d partitions, %+v", tp.NumPartitions(), tp.Config())
	}
	invalid := cfg
	invalid.SegmentAge = 0
	if err := r.l.AlterTopic("grow", invalid); err == nil {
		t.Errorf("invalid config accepted")
	}

	// Growing adds usable partitions.
	grown := cfg
	grown.Partitions = 4
	if err := r.l.AlterTopic("grow", grown); err != nil {
		t.Fatal(err)
	}
	if tp.NumPartitions() != 4 || len(tp.Partitions()) != 4 {
		t.Fatalf("%d partitions after growing to 4", tp.NumPartitions())
	}
	for i := int32(2); i < 4; i++ {
		p := hkPart(t, tp, i)
		if p.ID() != i || p.Topic() != tp {
			t.Errorf("partition %d: id %d", i, p.ID())
		}
		hkFill(t, p, int(i), hkAt(hkT0))
		if !ttExists(filepath.Join(r.dir, topicsDir, "grow", fmt.Sprint(i))) {
			t.Errorf("partition directory %d missing", i)
		}
	}
	// Keys now spread over four partitions.
	for i := range 50 {
		key := []byte(fmt.Sprintf("key-%d", i))
		if got, want := tp.PartitionFor(key, 10), KeyPartition(key, 4); got != want {
			t.Errorf("PartitionFor(%s) = %d, want %d", key, got, want)
		}
	}

	// Other settings change in place, with the same partition count.
	changed := grown
	changed.Retention = 5 * time.Hour
	changed.RetentionBytes = 1 << 20
	changed.OnFull = OnFullDropOldest
	changed.CleanupPolicy = CleanupCompactDelete
	changed.DeleteRetention = time.Minute
	changed.TimestampType = LogAppendTime
	changed.Sync = SyncInterval
	changed.SyncInterval = 2 * time.Second
	if err := r.l.AlterTopic("grow", changed); err != nil {
		t.Fatal(err)
	}
	if tp.Config() != changed {
		t.Errorf("config %+v, want %+v", tp.Config(), changed)
	}

	// All of it persists in meta.db.
	r.reopen()
	tp, err := r.l.Topic("grow")
	if err != nil {
		t.Fatal(err)
	}
	if tp.NumPartitions() != 4 || tp.Config() != changed {
		t.Errorf("after reopen: %d partitions, config %+v, want 4 and %+v", tp.NumPartitions(), tp.Config(), changed)
	}
	if cfgs, err := r.l.Meta().LoadTopics(); err != nil || cfgs["grow"] != changed {
		t.Errorf("meta.db holds %+v %v", cfgs["grow"], err)
	}
	for i, n := range []int64{0, 2, 2, 3} {
		if hw := hkPart(t, tp, int32(i)).HighWatermark(); hw != n {
			t.Errorf("partition %d: high watermark %d after reopen, want %d", i, hw, n)
		}
	}
	shrink := changed
	shrink.Partitions = 3
	if err := r.l.AlterTopic("grow", shrink); err == nil || tp.NumPartitions() != 4 {
		t.Errorf("shrinking after reopen: %v, %d partitions", err, tp.NumPartitions())
	}
}

func TestTopicDirectoryWithoutMetaIsAdopted(t *testing.T) {
	r := newHKRig(t, 0)
	cfg := hkConfig()
	cfg.Partitions = 3
	cfg.Retention = time.Hour
	tp := r.create("orphan", cfg)
	hkFill(t, hkPart(t, tp, 2), 7, hkAt(hkT0))
	r.create("known", hkConfig())
	if err := r.l.Close(); err != nil {
		t.Fatal(err)
	}
	// Lose orphan's meta.db entry; plant things that are not topics.
	m, err := OpenMeta(filepath.Join(r.dir, metaFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteTopic("orphan"); err != nil {
		t.Fatal(err)
	}
	m.Close()
	topics := filepath.Join(r.dir, topicsDir)
	for _, d := range []string{"not a topic/0", "gone" + deletedSuffix + "-12345/0"} {
		if err := os.MkdirAll(filepath.Join(topics, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(topics, "README"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}

	r.l = openTestLog(t, r.dir, r.opts)
	if got, want := r.l.Topics(), []string{"known", "orphan"}; !slices.Equal(got, want) {
		t.Fatalf("topics %v, want %v", got, want)
	}
	tp, err = r.l.Topic("orphan")
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultTopicConfig()
	want.Partitions = 3
	if tp.Config() != want {
		t.Errorf("adopted config %+v, want the default with 3 partitions", tp.Config())
	}
	if cfgs, err := r.l.Meta().LoadTopics(); err != nil || cfgs["orphan"] != want {
		t.Errorf("adopted topic not stored in meta.db: %+v %v", cfgs["orphan"], err)
	}
	p := hkPart(t, tp, 2)
	hkCheck(t, p, 0, 7, []int64{0, 5})
	// The interrupted deletion is finished; the other strays stay unadopted.
	if got, want := ttTopicDirs(t, r.dir), []string{"README", "known", "not a topic", "orphan"}; !slices.Equal(got, want) {
		t.Errorf("topic directories %v, want %v", got, want)
	}
	// Adopted once, it is an ordinary topic.
	r.reopen()
	if tp, err := r.l.Topic("orphan"); err != nil || tp.Config() != want {
		t.Errorf("after a second reopen: %v", err)
	}
}

func TestTopicNameContainingDeletedSurvivesReopen(t *testing.T) {
	// ".deleted" marks a directory whose deletion was interrupted, but it
	// is also legal inside a topic name: such a topic must keep its data.
	for _, name := range []string{"orders.deleted", "user.deletedItems", "x.deleted-1"} {
		t.Run(name, func(t *testing.T) {
			r := newHKRig(t, 0)
			tp := r.create(name, hkConfig())
			hkFill(t, hkPart(t, tp, 0), 7, hkAt(hkT0))
			r.reopen()
			tp, err := r.l.Topic(name)
			if err != nil {
				t.Fatal(err)
			}
			p := hkPart(t, tp, 0)
			if p.HighWatermark() != 7 {
				t.Fatalf("after reopen the topic holds offsets up to %d, want 7: its data was deleted", p.HighWatermark())
			}
			hkCheck(t, p, 0, 7, []int64{0, 5})
		})
	}
}

func TestTopicPartitionForKeysAndStickyRoundRobin(t *testing.T) {
	r := newHKRig(t, 0)
	cfg := hkConfig()
	cfg.Partitions = 3
	tp := r.create("spread", cfg)

	// Keys: Kafka's murmur2 partitioner, whatever the record size, and
	// regardless of keyless records in between.
	seen := map[int32]bool{}
	for i := range 200 {
		key := []byte(fmt.Sprintf("device-%d", i))
		got := tp.PartitionFor(key, 100000)
		if want := KeyPartition(key, 3); got != want {
			t.Fatalf("PartitionFor(%s) = %d, want %d", key, got, want)
		}
		seen[got] = true
		tp.PartitionFor(nil, 1)
	}
	if len(seen) != 3 {
		t.Errorf("200 keys landed on partitions %v only", seen)
	}
	if got := tp.PartitionFor([]byte{}, 10); got != KeyPartition([]byte{}, 3) {
		t.Errorf("an empty (non-nil) key is hashed like Kafka: got %d", got)
	}

	// Nil keys: 1 KiB records stick to a partition for 16 KiB, then move
	// on round robin. A fresh topic starts at partition 0.
	tp = r.create("sticky", cfg)
	var got []int32
	for range 16 * 7 {
		got = append(got, tp.PartitionFor(nil, 1024))
	}
	var want []int32
	for i := range 7 {
		for range 16 {
			want = append(want, int32(i%3))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("keyless partitions\n got %v\nwant %v", got, want)
	}
	// A record of 16 KiB or more fills a partition's share by itself.
	big := []int32{}
	for range 4 {
		big = append(big, tp.PartitionFor(nil, 20000))
	}
	if !slices.Equal(big, []int32{1, 2, 0, 1}) {
		t.Errorf("16 KiB keyless records went to %v, want [1 2 0 1]", big)
	}
	// Keyed records do not advance the sticky partition.
	tp2 := r.create("sticky2", cfg)
	for i := range 20 {
		tp2.PartitionFor([]byte(fmt.Sprint(i)), 1<<20)
	}
	if p := tp2.PartitionFor(nil, 10); p != 0 {
		t.Errorf("keyless after keyed records: partition %d, want 0", p)
	}
}

func TestTopicTimestampTypes(t *testing.T) {
	cases := []struct {
		tsType TimestampType
	}{{CreateTime}, {LogAppendTime}}
	for _, tc := range cases {
		t.Run(string(tc.tsType), func(t *testing.T) {
			r := newHKRig(t, 0)
			cfg := hkConfig()
			cfg.TimestampType = tc.tsType
			tp := r.create("stamped", cfg)
			p := hkPart(t, tp, 0)
			r.set(hkT0.Add(time.Hour))
			res1, err := p.AppendRecords([]Record{kv("a", "1", 1000), kv("b", "2", 5000), kv("c", "3", 3000)}, DefaultBatchOptions)
			if err != nil {
				t.Fatal(err)
			}
			r.set(hkT0.Add(2 * time.Hour))
			res2, err := p.AppendRecords([]Record{kv("d", "4", 7000)}, DefaultBatchOptions)
			if err != nil {
				t.Fatal(err)
			}
			broker1, broker2 := hkMs(hkT0.Add(time.Hour)), hkMs(hkT0.Add(2*time.Hour))
			producer := []int64{1000, 5000, 3000, 7000}
			wantTs, wantMax, wantLAT := producer, []int64{5000, 7000}, []int64{-1, -1}
			if tc.tsType == LogAppendTime {
				wantTs = []int64{broker1, broker1, broker1, broker2}
				wantMax = []int64{broker1, broker2}
				wantLAT = []int64{broker1, broker2}
			}
			if res1.LogAppendTime != wantLAT[0] || res2.LogAppendTime != wantLAT[1] {
				t.Errorf("append results report log append times %d and %d, want %v", res1.LogAppendTime, res2.LogAppendTime, wantLAT)
			}
			check := func(p *Partition) {
				t.Helper()
				recs := readAll(t, p)
				var got []int64
				for _, rc := range recs {
					got = append(got, rc.Timestamp)
				}
				if !slices.Equal(got, wantTs) {
					t.Errorf("record timestamps %v, want %v", got, wantTs)
				}
				for i, h := range ctBatches(t, p) {
					if h.LogAppendTime() != (tc.tsType == LogAppendTime) || h.MaxTimestamp != wantMax[i] {
						t.Errorf("batch %d: log append time %v, max timestamp %d, want %v %d",
							i, h.LogAppendTime(), h.MaxTimestamp, tc.tsType == LogAppendTime, wantMax[i])
					}
					// The stored batch is still a valid Kafka batch (CRC).
					if _, err := ParseBatchHeader(mustRead(t, p, h.BaseOffset)); err != nil {
						t.Errorf("batch %d: %v", i, err)
					}
				}
				for i, ts := range wantTs {
					// The first record, in log order, stamped at or after ts.
					first := int64(slices.IndexFunc(wantTs, func(t2 int64) bool { return t2 >= ts }))
					off, ok, err := p.OffsetForTime(ts)
					if err != nil || !ok || off != first {
						t.Errorf("OffsetForTime(%d) for record %d = %d %v %v, want %d", ts, i, off, ok, err, first)
					}
				}
			}
			check(p)
			r.reopen()
			tp, err = r.l.Topic("stamped")
			if err != nil {
				t.Fatal(err)
			}
			check(hkPart(t, tp, 0))
		})
	}
}

func mustRead(t testing.TB, p *Partition, off int64) []byte {
	t.Helper()
	data, err := p.Read(off, 1)
	if err != nil {
		t.Fatal(err)
	}
	h := parseBatchHeader(data)
	return data[:h.Size()]
}
