package kafka

import (
	"errors"

	spoollog "github.com/spoolmq/spool/log"
	"github.com/twmb/franz-go/pkg/kerr"
)

// errorCode maps a log error to the Kafka error a broker would return.
// A full disk or a topic at its on_full: reject limit is
// KAFKA_STORAGE_ERROR, which clients retry: the producer holds its
// records and tries again until space returns or its delivery timeout
// ends, and nothing is acknowledged that was not stored.
func errorCode(err error) int16 {
	var be *spoollog.BatchError
	var ce *spoollog.CorruptionError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, spoollog.ErrUnknownTopic), errors.Is(err, spoollog.ErrUnknownPartition):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, spoollog.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, spoollog.ErrTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, spoollog.ErrTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, spoollog.ErrPolicy):
		return kerr.PolicyViolation.Code
	case errors.As(err, &be):
		return kerr.CorruptMessage.Code
	case errors.As(err, &ce):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, spoollog.ErrClosed):
		return kerr.NotLeaderForPartition.Code // shutting down: retry elsewhere, or later
	}
	return kerr.KafkaStorageError.Code
}

// errMessage is err's text for the responses that carry one.
func errMessage(err error) *string {
	if err == nil {
		return nil
	}
	m := err.Error()
	return &m
}
