package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
)

// replyError stands in for an error reply from Redis (go-redis marks those
// with a RedisError method).
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

func TestParseGroupsReadsEveryReplyShape(t *testing.T) {
	tests := []struct {
		name  string
		reply any
		want  []groupInfo
	}{
		{
			name: "RESP3 maps from Redis 7",
			reply: []any{map[any]any{
				"name": "workers", "consumers": int64(2), "pending": int64(3),
				"last-delivered-id": "5-0", "entries-read": int64(5), "lag": int64(7),
			}},
			want: []groupInfo{{name: "workers", entriesRead: 5, entriesReadKnown: true, lag: 7, lagKnown: true}},
		},
		{
			name: "RESP2 flat arrays",
			reply: []any{[]any{
				"name", "workers", "consumers", int64(2), "pending", int64(3),
				"last-delivered-id", "5-0", "entries-read", int64(5), "lag", int64(7),
			}},
			want: []groupInfo{{name: "workers", entriesRead: 5, entriesReadKnown: true, lag: 7, lagKnown: true}},
		},
		{
			name:  "Redis 6 has neither entries-read nor lag",
			reply: []any{[]any{"name", "workers", "consumers", int64(1), "pending", int64(0), "last-delivered-id", "0-0"}},
			want:  []groupInfo{{name: "workers"}},
		},
		{
			name:  "nil lag after XDEL past the group",
			reply: []any{map[any]any{"name": "workers", "entries-read": int64(1), "lag": nil}},
			want:  []groupInfo{{name: "workers", entriesRead: 1, entriesReadKnown: true}},
		},
		{
			name:  "nil entries-read with a known lag after XGROUP CREATE 0",
			reply: []any{map[string]any{"name": "workers", "entries-read": nil, "lag": int64(5)}},
			want:  []groupInfo{{name: "workers", lag: 5, lagKnown: true}},
		},
		{
			name:  "numbers as strings and unknown future fields",
			reply: []any{map[any]any{"name": "workers", "lag": "4", "entries-read": "9", "new-field": []any{int64(1)}}},
			want:  []groupInfo{{name: "workers", entriesRead: 9, entriesReadKnown: true, lag: 4, lagKnown: true}},
		},
		{
			name: "several groups",
			reply: []any{
				map[any]any{"name": "a", "lag": int64(1)},
				map[any]any{"name": "b", "lag": int64(2)},
			},
			want: []groupInfo{{name: "a", lag: 1, lagKnown: true}, {name: "b", lag: 2, lagKnown: true}},
		},
		{name: "no groups", reply: []any{}, want: []groupInfo{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseGroups(tt.reply)
			if err != nil {
				t.Fatalf("parseGroups: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseGroups = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseGroupsRefusesMalformedReplies(t *testing.T) {
	tests := []struct {
		name    string
		reply   any
		wantErr string
	}{
		{"not an array", "OK", "not an array"},
		{"entry is a number", []any{int64(1)}, "not a map or an array"},
		{"odd flat array", []any{[]any{"name", "workers", "lag"}}, "odd number"},
		{"field name not a string", []any{[]any{int64(1), "x"}}, "field name"},
		{"map key not a string", []any{map[any]any{int64(1): "x"}}, "field name"},
		{"no name", []any{map[any]any{"lag": int64(1)}}, "group name"},
		{"negative lag", []any{map[any]any{"name": "g", "lag": int64(-1)}}, "negative"},
		{"lag of the wrong type", []any{map[any]any{"name": "g", "lag": 1.5}}, "not an integer"},
		{"non-numeric string", []any{map[any]any{"name": "g", "entries-read": "lots"}}, "not an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseGroups(tt.reply)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("parseGroups error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestStreamSample(t *testing.T) {
	tests := []struct {
		name            string
		group           groupInfo
		pending, length int64
		want            Sample
	}{
		{
			name:    "lag known: backlog is lag, completed is read minus pending",
			group:   groupInfo{lag: 4, lagKnown: true, entriesRead: 10, entriesReadKnown: true},
			pending: 3, length: 14,
			want: sampleOf(4, 3, 7, true, BacklogGroupLag),
		},
		{
			name:    "lag unknown: XLEN as upper bound, no completion counter",
			group:   groupInfo{entriesRead: 10, entriesReadKnown: true},
			pending: 3, length: 13,
			want: sampleOf(13, 3, 0, false, BacklogStreamLength),
		},
		{
			name:    "entries-read unknown: lag still used",
			group:   groupInfo{lag: 5, lagKnown: true},
			pending: 0, length: 5,
			want: sampleOf(5, 0, 0, false, BacklogGroupLag),
		},
		{
			name:    "more pending than read (claimed after SETID): no counter rather than a negative one",
			group:   groupInfo{lag: 0, lagKnown: true, entriesRead: 2, entriesReadKnown: true},
			pending: 3, length: 3,
			want: sampleOf(0, 3, 0, false, BacklogGroupLag),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := streamSample(tt.group, tt.pending, tt.length); got != tt.want {
				t.Fatalf("streamSample = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func sampleOf(backlog, inFlight, completed int64, known bool, src BacklogSource) Sample {
	s := Sample{BacklogSource: src}
	s.Backlog, s.InFlight, s.Completed, s.CompletedKnown = backlog, inFlight, completed, known
	return s
}

func TestListSampleHasNoCompletionCounter(t *testing.T) {
	if got, want := listSample(7, 2), sampleOf(7, 2, 0, false, BacklogListLength); got != want {
		t.Fatalf("listSample = %+v, want %+v", got, want)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want error
	}{
		{replyError("WRONGPASS invalid username-password pair or user is disabled."), ErrAuth},
		{replyError("NOAUTH Authentication required."), ErrAuth},
		{replyError("NOPERM this user has no permissions to run the 'xinfo' command"), ErrAuth},
		{replyError("WRONGTYPE Operation against a key holding the wrong kind of value"), ErrWrongType},
		{replyError("NOGROUP No such key 'jobs' or consumer group 'workers' in XPENDING command"), ErrQueueNotFound},
		{replyError("ERR no such key"), ErrQueueNotFound},
		{replyError("LOADING Redis is loading the dataset in memory"), ErrUnavailable},
		{replyError("BUSY Redis is busy running a script."), ErrUnavailable},
		{replyError("ERR max number of clients reached"), ErrUnavailable},
		{replyError("ERR unknown command 'XINFO'"), ErrBadReply},
		{fmt.Errorf("wrapped: %w", replyError("WRONGTYPE x")), ErrWrongType},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, ErrUnavailable},
		{context.DeadlineExceeded, ErrUnavailable},
		{io.EOF, ErrUnavailable},
	}
	for _, tt := range tests {
		if got := classifyRedis(tt.err); !errors.Is(got, tt.want) {
			t.Errorf("classifyRedis(%q) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestPollErrorNamesQueueAndAddressAndKeepsBothCauses(t *testing.T) {
	cause := replyError("NOGROUP No such key")
	err := pollError(RedisQueue{Stream: "jobs", ConsumerGroup: "workers"}, "10.0.0.1:6379", ErrQueueNotFound, cause)
	want := `reading stream "jobs" group "workers" on 10.0.0.1:6379: queue not found: NOGROUP No such key`
	if err.Error() != want {
		t.Fatalf("error = %q, want %q", err, want)
	}
	if !errors.Is(err, ErrQueueNotFound) || !errors.Is(err, cause) {
		t.Fatalf("error %v does not wrap both its kind and its cause", err)
	}
}

func TestRedisQueueValidate(t *testing.T) {
	tests := []struct {
		q       RedisQueue
		wantErr string
	}{
		{RedisQueue{List: "jobs"}, ""},
		{RedisQueue{List: "jobs", ProcessingList: "jobs:processing"}, ""},
		{RedisQueue{Stream: "jobs", ConsumerGroup: "workers"}, ""},
		{RedisQueue{}, "neither"},
		{RedisQueue{List: "a", Stream: "b", ConsumerGroup: "g"}, "both"},
		{RedisQueue{Stream: "jobs"}, "needs a consumer group"},
		{RedisQueue{List: "jobs", ConsumerGroup: "g"}, "only to a stream"},
		{RedisQueue{Stream: "jobs", ConsumerGroup: "g", ProcessingList: "p"}, "only to a list"},
		{RedisQueue{List: "jobs", ProcessingList: "jobs"}, "also its processing list"},
	}
	for _, tt := range tests {
		err := tt.q.validate()
		if tt.wantErr == "" && err != nil {
			t.Errorf("%v: unexpected error %v", tt.q, err)
		}
		if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%v: error = %v, want one mentioning %q", tt.q, err, tt.wantErr)
		}
	}
}
