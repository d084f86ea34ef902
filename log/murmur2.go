package log

// Murmur2 is the murmur2 hash exactly as Kafka's Java producer computes it
// (org.apache.kafka.common.utils.Utils.murmur2). Records produced to Spool
// must land in the partition a Kafka client would pick for the same key, so
// this must match bit for bit, including the seed and the little-endian
// reading of each 4-byte block.
func Murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for len(b) >= 4 {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
		b = b[4:]
	}
	// The tail is mixed in the same fallthrough order as the Java switch.
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// KeyPartition returns the partition Kafka's default partitioner chooses for
// a non-nil key: the hash with its sign bit cleared (Utils.toPositive), modulo
// the partition count. Clearing the bit rather than taking an absolute value
// is what Kafka does, so it is what clients expect. partitions must be
// positive.
func KeyPartition(key []byte, partitions int32) int32 {
	if partitions <= 0 {
		panic("log: KeyPartition called with a partition count that is not positive")
	}
	return int32(Murmur2(key)&0x7fffffff) % partitions
}
