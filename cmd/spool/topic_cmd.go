package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

const topicUsage = `usage: spool topic create NAME [--partitions N] [--replication-factor R] [--config k=v ...]
       spool topic list
       spool topic describe NAME
       spool topic alter NAME [--partitions N] [--config k=v ...] [--delete-config k ...]
       spool topic delete NAME
Every subcommand takes --brokers host:port[,host:port] (env SPOOL_BROKERS) and --timeout.`

// runTopic manages topics over the Kafka admin protocol, like
// kafka-topics.sh, against any cluster.
func runTopic(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, topicUsage)
		return 2
	}
	switch args[0] {
	case "create":
		return runTopicCreate(ctx, args[1:], stdout, stderr)
	case "list":
		return runTopicList(ctx, args[1:], stdout, stderr)
	case "describe":
		return runTopicDescribe(ctx, args[1:], stdout, stderr)
	case "alter":
		return runTopicAlter(ctx, args[1:], stdout, stderr)
	case "delete":
		return runTopicDelete(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, topicUsage)
		return 0
	}
	fmt.Fprintf(stderr, "spool topic: unknown subcommand %q\n%s\n", args[0], topicUsage)
	return 2
}

func runTopicCreate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("spool topic create", stderr)
	k := addKafkaFlags(fs)
	partitions := fs.Int("partitions", -1, "number of partitions (default: the broker's num.partitions)")
	replicas := fs.Int("replication-factor", -1, "replicas of each partition (default: the broker's default.replication.factor)")
	var configs kvFlag
	fs.Var(&configs, "config", "topic config key=value, repeatable (e.g. retention.ms=86400000)")
	name, code := nameArg(fs, args, "spool topic create NAME [flags]")
	if code >= 0 {
		return code
	}
	if *partitions == 0 || *partitions < -1 || *partitions > 1<<20 {
		fmt.Fprintf(stderr, "spool topic create: --partitions %d is not a positive count\n", *partitions)
		return 2
	}
	if *replicas == 0 || *replicas < -1 || *replicas > 1<<15-1 {
		fmt.Fprintf(stderr, "spool topic create: --replication-factor %d is not a positive count\n", *replicas)
		return 2
	}
	cl, adm, err := k.admin(ctx)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	defer cl.Close()
	cfg := make(map[string]*string, len(configs))
	for _, c := range configs {
		cfg[c.key] = kadm.StringPtr(c.value)
	}
	resp, err := adm.CreateTopic(ctx, int32(*partitions), int16(*replicas), cfg, name)
	if err != nil {
		return fail(stderr, "topic create %s: %v", name, withMessage(err, resp.ErrMessage))
	}
	fmt.Fprintf(stdout, "created topic %s with %d partitions, replication factor %d\n", name, resp.NumPartitions, resp.ReplicationFactor)
	return 0
}

func runTopicList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("spool topic list", stderr)
	k := addKafkaFlags(fs)
	internal := fs.Bool("internal", false, "also list internal topics such as __consumer_offsets")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: spool topic list [flags]\nPrints one topic name a line, sorted.")
		fs.PrintDefaults()
	}
	pos, code := parseInterspersed(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) != 0 {
		fs.Usage()
		return 2
	}
	cl, adm, err := k.admin(ctx)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	defer cl.Close()
	list := adm.ListTopics
	if *internal {
		list = adm.ListTopicsWithInternal
	}
	topics, err := list(ctx)
	if err != nil {
		return fail(stderr, "topic list: %v", err)
	}
	for _, name := range topics.Names() {
		fmt.Fprintln(stdout, name)
	}
	return 0
}

func runTopicDescribe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("spool topic describe", stderr)
	k := addKafkaFlags(fs)
	name, code := nameArg(fs, args, "spool topic describe NAME [flags]")
	if code >= 0 {
		return code
	}
	cl, adm, err := k.admin(ctx)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	defer cl.Close()
	td, err := describeTopic(ctx, adm, name)
	if err != nil {
		return fail(stderr, "topic describe %s: %v", name, err)
	}
	starts, err := adm.ListStartOffsets(ctx, name)
	if err != nil {
		return fail(stderr, "topic describe %s: start offsets: %v", name, err)
	}
	ends, err := adm.ListEndOffsets(ctx, name)
	if err != nil {
		return fail(stderr, "topic describe %s: end offsets: %v", name, err)
	}
	configs, err := adm.DescribeTopicConfigs(ctx, name)
	if err != nil {
		return fail(stderr, "topic describe %s: configs: %v", name, err)
	}
	rc, err := configs.On(name, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return fail(stderr, "topic describe %s: configs: %v", name, withMessage(err, rc.ErrMessage))
	}

	fmt.Fprintf(stdout, "topic: %s\n", name)
	if td.ID != (kadm.TopicID{}) { // brokers before Kafka 2.8 have no topic IDs
		fmt.Fprintf(stdout, "id: %s\n", td.ID)
	}
	fmt.Fprintf(stdout, "partitions: %d\nreplication factor: %d\n\n", len(td.Partitions), td.Partitions.NumReplicas())
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tLEADER\tEPOCH\tREPLICAS\tISR\tSTART\tEND")
	for _, p := range td.Partitions.Sorted() {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\t%s\n", p.Partition, p.Leader, p.LeaderEpoch,
			joinInt32s(p.Replicas), joinInt32s(p.ISR), listedOffset(starts, name, p.Partition), listedOffset(ends, name, p.Partition))
	}
	tw.Flush()
	fmt.Fprintln(stdout)
	slices.SortFunc(rc.Configs, func(a, b kadm.Config) int { return strings.Compare(a.Key, b.Key) })
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONFIG\tVALUE\tSOURCE")
	for _, c := range rc.Configs {
		v := c.MaybeValue()
		if c.Sensitive {
			v = "(sensitive)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Key, v, c.Source)
	}
	tw.Flush()
	return 0
}

func runTopicAlter(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("spool topic alter", stderr)
	k := addKafkaFlags(fs)
	partitions := fs.Int("partitions", 0, "grow the topic to N partitions (Kafka cannot shrink a topic)")
	var set kvFlag
	fs.Var(&set, "config", "set topic config key=value, repeatable")
	var del listFlag
	fs.Var(&del, "delete-config", "remove a topic config override, back to the broker default; repeatable")
	name, code := nameArg(fs, args, "spool topic alter NAME [flags]")
	if code >= 0 {
		return code
	}
	if *partitions < 0 || *partitions > 1<<20 {
		fmt.Fprintf(stderr, "spool topic alter: --partitions %d is not a positive count\n", *partitions)
		return 2
	}
	if *partitions == 0 && len(set) == 0 && len(del) == 0 {
		fmt.Fprintln(stderr, "spool topic alter: nothing to change; give --partitions, --config or --delete-config")
		return 2
	}
	cl, adm, err := k.admin(ctx)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	defer cl.Close()
	td, err := describeTopic(ctx, adm, name)
	if err != nil {
		return fail(stderr, "topic alter %s: %v", name, err)
	}
	// Check before sending anything, so a refused shrink changes no
	// config either.
	have := len(td.Partitions)
	if *partitions > 0 && *partitions < have {
		return fail(stderr, "topic alter %s: it has %d partitions and Kafka cannot remove partitions; --partitions must be at least %d", name, have, have)
	}

	if len(set) > 0 || len(del) > 0 {
		var alters []kadm.AlterConfig
		for _, c := range set {
			alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: c.key, Value: kadm.StringPtr(c.value)})
		}
		for _, key := range del {
			alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: key})
		}
		resps, err := adm.AlterTopicConfigs(ctx, alters, name)
		if err == nil {
			var r kadm.AlterConfigsResponse
			if r, err = resps.On(name, nil); err == nil && r.Err != nil {
				err = withMessage(r.Err, r.ErrMessage)
			}
		}
		if err != nil {
			return fail(stderr, "topic alter %s: configs: %v", name, err)
		}
		for _, c := range set {
			fmt.Fprintf(stdout, "topic %s: set %s=%s\n", name, c.key, c.value)
		}
		for _, key := range del {
			fmt.Fprintf(stdout, "topic %s: removed %s\n", name, key)
		}
	}

	switch {
	case *partitions == have:
		fmt.Fprintf(stderr, "spool: topic %s already has %d partitions\n", name, have)
	case *partitions > have:
		resps, err := adm.UpdatePartitions(ctx, *partitions, name)
		if err == nil {
			var r kadm.CreatePartitionsResponse
			if r, err = resps.On(name, nil); err == nil && r.Err != nil {
				err = withMessage(r.Err, r.ErrMessage)
			}
		}
		if err != nil {
			return fail(stderr, "topic alter %s: partitions: %v", name, err)
		}
		fmt.Fprintf(stdout, "topic %s: partitions %d -> %d\n", name, have, *partitions)
	}
	return 0
}

func runTopicDelete(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("spool topic delete", stderr)
	k := addKafkaFlags(fs)
	name, code := nameArg(fs, args, "spool topic delete NAME [flags]")
	if code >= 0 {
		return code
	}
	cl, adm, err := k.admin(ctx)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	defer cl.Close()
	resp, err := adm.DeleteTopic(ctx, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fail(stderr, "topic delete %s: %v", name, withMessage(err, resp.ErrMessage))
	}
	fmt.Fprintf(stdout, "deleted topic %s\n", name)
	return 0
}

// describeTopic returns the metadata of one topic, with a plain error when
// it does not exist.
func describeTopic(ctx context.Context, adm *kadm.Client, name string) (kadm.TopicDetail, error) {
	topics, err := adm.ListTopics(ctx, name)
	if err != nil {
		return kadm.TopicDetail{}, err
	}
	td, ok := topics[name]
	switch {
	case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
		return td, fmt.Errorf("topic %q does not exist", name)
	case td.Err != nil:
		return td, td.Err
	}
	return td, nil
}

// withMessage adds the broker's free-text error message, which often says
// which config or value it refused, to the error code's text.
func withMessage(err error, msg string) error {
	if msg == "" || err == nil || strings.Contains(err.Error(), msg) {
		return err
	}
	return fmt.Errorf("%w (%s)", err, msg)
}

func listedOffset(l kadm.ListedOffsets, topic string, p int32) string {
	o, ok := l.Lookup(topic, p)
	if !ok || o.Err != nil {
		return "?"
	}
	return fmt.Sprint(o.Offset)
}

func joinInt32s(s []int32) string {
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ",")
}
