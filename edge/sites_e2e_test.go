package edge

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/config"
	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestThreeSitesOneUpstream: three Spools with their own edge_id mirror
// the same local topics to one upstream cluster. Each site's records land
// in its own prefixed topics, complete, in local partition order, with
// origin headers naming the site; no site's records appear under another.
func TestThreeSitesOneUpstream(t *testing.T) {
	up, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	sites := []string{"farm-a", "farm-b", "farm-c"}
	topics := map[string]int32{"telemetry": 2, "alarms": 1}
	const perPartition = 50
	for _, site := range sites {
		cfg := config.Default()
		cfg.Data = t.TempDir()
		cfg.MQTT.Addr, cfg.Kafka.Addr, cfg.HTTP.Addr = "", "", ""
		cfg.EdgeID = site
		for name, n := range topics {
			cfg.Topics = append(cfg.Topics, config.TopicSpec{Name: name, Partitions: &n})
		}
		cfg.Links = []config.LinkSpec{{Name: "central", Kafka: config.KafkaPeer{Brokers: up.ListenAddrs()}, Topics: []string{"*"}}}
		srv := startServer(t, cfg)
		for name, n := range topics {
			tp, err := srv.Log().Topic(name)
			if err != nil {
				t.Fatal(err)
			}
			for p := range n {
				part, err := tp.Partition(p)
				if err != nil {
					t.Fatal(err)
				}
				for i := range perPartition {
					rec := spoollog.Record{
						Timestamp: time.Now().UnixMilli(),
						Key:       fmt.Appendf(nil, "%s-dev-%d", site, i%7),
						Value:     fmt.Appendf(nil, "%s/%s/%d/%d", site, name, p, i),
						Headers:   []spoollog.Header{{Key: "unit", Value: []byte("C")}},
					}
					if _, err := part.AppendRecords([]spoollog.Record{rec}, spoollog.DefaultBatchOptions); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(up.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, site := range sites {
		for name, n := range topics {
			dest := site + "." + name
			for p := range n {
				got := readPartition(ctx, t, cl, dest, p, perPartition)
				for i, r := range got {
					hdr := map[string]string{}
					for _, h := range r.Headers {
						hdr[h.Key] = string(h.Value)
					}
					want := fmt.Sprintf("%s/%s/%d/%d", site, name, p, i)
					if string(r.Value) != want || string(r.Key) != fmt.Sprintf("%s-dev-%d", site, i%7) ||
						hdr["spool.edge"] != site || hdr["spool.topic"] != name || hdr["spool.partition"] != strconv.Itoa(int(p)) ||
						hdr["spool.offset"] != strconv.Itoa(i) || hdr["unit"] != "C" {
						t.Fatalf("%s[%d] record %d: key %q value %q headers %v, want value %q", dest, p, i, r.Key, r.Value, hdr, want)
					}
				}
			}
		}
	}
}

// readPartition reads exactly n records of one upstream partition from
// its start, failing if they do not arrive or more are there.
func readPartition(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, p int32, n int) []*kgo.Record {
	t.Helper()
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().AtStart()}})
	defer cl.RemoveConsumePartitions(map[string][]int32{topic: {p}})
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s[%d]: %d of %d records arrived", topic, p, len(out), n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Topic == topic && r.Partition == p {
				out = append(out, r)
			}
		})
	}
	if len(out) != n {
		t.Fatalf("%s[%d]: %d records, want %d", topic, p, len(out), n)
	}
	return out
}
