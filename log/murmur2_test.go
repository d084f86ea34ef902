package log

import (
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestMurmur2Golden uses the vectors of Kafka's UtilsTest.testMurmur2, which
// are Java ints, so the hash is compared as an int32.
func TestMurmur2Golden(t *testing.T) {
	cases := []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	}
	for _, c := range cases {
		if got := int32(Murmur2([]byte(c.in))); got != c.want {
			t.Errorf("Murmur2(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

// TestKeyPartitionMatchesFranzGo checks placement against a real Kafka
// client's default partitioner, for key lengths covering every tail case.
func TestKeyPartitionMatchesFranzGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	counts := []int32{1, 2, 3, 7, 12, 100}
	part := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for i := 0; i < 5000; i++ {
		// Always non-nil, even when empty: franz-go hashes an empty key but
		// not a nil one (a nil key goes to the sticky partition).
		k := make([]byte, rng.IntN(65))
		for j := range k {
			k[j] = byte(rng.Uint32())
		}
		for _, n := range counts {
			want := part.Partition(&kgo.Record{Key: k}, int(n))
			if got := KeyPartition(k, n); int(got) != want {
				t.Fatalf("KeyPartition(%x, %d) = %d, franz-go says %d", k, n, got, want)
			}
		}
	}
}

func TestKeyPartitionPanicsOnNoPartitions(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("KeyPartition(key, 0) did not panic")
		}
	}()
	KeyPartition([]byte("k"), 0)
}

func BenchmarkMurmur2(b *testing.B) {
	key := []byte("sensor/greenhouse-3/temperature")
	b.SetBytes(int64(len(key)))
	for b.Loop() {
		Murmur2(key)
	}
}
