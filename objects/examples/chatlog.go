package examples

import (
	"errors"
	"fmt"

	"github.com/duro-db/duro/objects"
)

// ChatLog is an append-only list of messages numbered from 1.
type ChatLog struct{}

// Limits of ChatLog.
const (
	MaxMessageText   = 4096
	DefaultReadLimit = 100
	MaxReadLimit     = 1000
)

// AppendArgs are the arguments of ChatLog.Append.
type AppendArgs struct {
	Text   string `json:"text"`
	Author string `json:"author"`
}

// AppendResult is the new message's sequence number.
type AppendResult struct {
	Seq uint64 `json:"seq"`
}

// ReadArgs are the arguments of ChatLog.Read: messages with Seq >= From, at most Limit.
type ReadArgs struct {
	From  uint64 `json:"from"`
	Limit int    `json:"limit"` // 0 means DefaultReadLimit; at most MaxReadLimit
}

// Message is one message of a ChatLog.
type Message struct {
	Seq    uint64 `json:"seq"`
	Author string `json:"author"`
	Text   string `json:"text"`
	Time   int64  `json:"time"` // unix nanos
}

// ReadResult holds messages in sequence order.
type ReadResult struct {
	Messages []Message `json:"messages"`
}

// msgKey is "m/" and the sequence number as 20 zero-padded digits, so keys sort bytewise
// in sequence order.
func msgKey(seq uint64) string { return fmt.Sprintf("m/%020d", seq) }

// Append adds a message and returns its sequence number.
func (*ChatLog) Append(ctx *objects.Context, in AppendArgs) (AppendResult, error) {
	if len(in.Text) > MaxMessageText {
		return AppendResult{}, fmt.Errorf("text longer than %d bytes", MaxMessageText)
	}
	st := ctx.Storage()
	last, _, err := objects.GetAs[uint64](st, "last")
	if err != nil {
		return AppendResult{}, err
	}
	seq := last + 1
	m := Message{Seq: seq, Author: in.Author, Text: in.Text, Time: ctx.Now().UnixNano()}
	if err := st.PutMany(map[string]any{"last": seq, msgKey(seq): m}); err != nil {
		return AppendResult{}, err
	}
	return AppendResult{Seq: seq}, nil
}

// Read returns up to Limit messages from From on, in order.
func (*ChatLog) Read(ctx *objects.Context, in ReadArgs) (ReadResult, error) {
	switch {
	case in.Limit < 0 || in.Limit > MaxReadLimit:
		return ReadResult{}, errors.New("limit must be 0..1000")
	case in.Limit == 0:
		in.Limit = DefaultReadLimit
	}
	entries, err := objects.ListAs[Message](ctx.Storage(), objects.ListOptions{
		Prefix: "m/", Start: msgKey(in.From), Limit: in.Limit,
	})
	if err != nil {
		return ReadResult{}, err
	}
	out := ReadResult{Messages: make([]Message, len(entries))}
	for i, e := range entries {
		out.Messages[i] = e.Value
	}
	return out, nil
}

func registerChatLog(r *objects.Registry) {
	objects.RegisterIn(r, "ChatLog", func() *ChatLog { return new(ChatLog) },
		objects.Method("Append", (*ChatLog).Append),
		objects.Method("Read", (*ChatLog).Read),
	)
}
