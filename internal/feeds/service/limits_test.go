package service_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/skuflow/skuflow/internal/testkit"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// streamedUpload is a REST feed upload whose body the test writes while the
// gateway reads it.
type streamedUpload struct {
	t    *testing.T
	body *io.PipeWriter
	done chan answer
}

// startUpload starts a CSV upload and returns once the gateway has
// authorized it and begun reading the body: the request asks for 100
// Continue, which the server sends only when the handler first reads the
// body, and the client sends the header line only after it, so the first
// Write returns only then.
func (s *stack) startUpload(merchant, token, header string) *streamedUpload {
	s.t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", s.base+"/v1/merchants/"+merchant+"/feeds", pr)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Expect", "100-continue")
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Hour}}
	u := &streamedUpload{t: s.t, body: pw, done: make(chan answer, 1)}
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			u.done <- answer{status: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		u.done <- answer{status: resp.StatusCode, body: b, header: resp.Header}
	}()
	if _, err := io.WriteString(pw, header); err != nil {
		s.t.Fatalf("writing the header: %v", err)
	}
	s.t.Cleanup(func() { pw.Close(); client.CloseIdleConnections() })
	return u
}

// write sends rows; false once the gateway stopped reading.
func (u *streamedUpload) write(rows string) bool {
	_, err := io.WriteString(u.body, rows)
	return err == nil
}

// end closes the body and returns the answer with its feed status.
func (u *streamedUpload) end() (answer, *pb.FeedStatus) {
	u.t.Helper()
	u.body.Close()
	a := <-u.done
	var st pb.FeedStatus
	if err := protojson.Unmarshal(a.body, &st); err != nil {
		u.t.Fatalf("answer %s is no feed status: %v", a, err)
	}
	return a, &st
}

// TestUploadRechecksAuthorization: an upload does not keep the
// permissions it started with. A token rotated, or a location taken from
// the merchant, while the body is still being sent stops the upload, and
// rows read since the last successful check are not stored.
func TestUploadRechecksAuthorization(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	// Checks only at the end of the body (and the 100-row batches' ends):
	// no wall-clock interval decides where these subtests stop.
	s := startStack(t, stackOpts{kafka: b.Kafka, reauth: time.Hour})
	rows := func(loc string, n int) string {
		var sb strings.Builder
		for i := range n {
			fmt.Fprintf(&sb, "SKU-%d,%s,%d\n", i, loc, i)
		}
		return sb.String()
	}

	t.Run("a token rotated during the upload stops it at its end", func(t *testing.T) {
		tok := s.createMerchant("ROT-A", "ROT-A-1")
		u := s.startUpload("ROT-A", tok, "sku,location,on_hand\n")
		u.write(rows("ROT-A-1", 10))
		if a := s.admin("POST", "/v1/admin/merchants/ROT-A:rotateToken", &pb.RotateTokenRequest{MerchantId: "ROT-A"}, nil); a.status != 200 {
			t.Fatalf("rotate: %s", a)
		}
		u.write(rows("ROT-A-1", 10))
		a, st := u.end()
		if a.status != 401 || st.GetState() != pb.FeedState_FEED_STATE_FAILED || st.GetAccepted() != 0 || st.GetRejected() != 20 {
			t.Fatalf("got %s, want 401, the feed failed, 0 rows stored and 20 rejected", a)
		}
		if !strings.Contains(st.GetError(), "no longer valid") {
			t.Errorf("error %q does not say the token is no longer valid", st.GetError())
		}
	})

	t.Run("a token rotated during the upload stops it while the client still sends", func(t *testing.T) {
		ss := startStack(t, stackOpts{kafka: b.Kafka, reauth: time.Nanosecond}) // re-check before every row
		tok := ss.createMerchant("ROT-B", "ROT-B-1")
		u := ss.startUpload("ROT-B", tok, "sku,location,on_hand\n")
		u.write(rows("ROT-B-1", 10))
		if a := ss.admin("POST", "/v1/admin/merchants/ROT-B:rotateToken", &pb.RotateTokenRequest{MerchantId: "ROT-B"}, nil); a.status != 200 {
			t.Fatalf("rotate: %s", a)
		}
		for range 900 { // the limit is 1000 rows
			if !u.write(rows("ROT-B-1", 1)) {
				break
			}
		}
		a, st := u.end()
		if a.status != 401 || st.GetState() != pb.FeedState_FEED_STATE_FAILED || st.GetAccepted() != 0 {
			t.Fatalf("got %s, want 401, the feed failed and no row stored", a)
		}
		if read := st.GetAccepted() + st.GetRejected(); read >= 910 {
			t.Fatalf("the gateway read all %d rows: it did not stop when the token was rotated", read)
		}
	})

	t.Run("a token rotated before the first row stops the upload at that row", func(t *testing.T) {
		ss := startStack(t, stackOpts{kafka: b.Kafka, reauth: time.Nanosecond}) // re-check before every row
		tok := ss.createMerchant("ROT-C", "ROT-C-1")
		u := ss.startUpload("ROT-C", tok, "sku,location,on_hand\n") // authorized, the body being read
		if a := ss.admin("POST", "/v1/admin/merchants/ROT-C:rotateToken", &pb.RotateTokenRequest{MerchantId: "ROT-C"}, nil); a.status != 200 {
			t.Fatalf("rotate: %s", a)
		}
		u.write(rows("ROT-C-1", 5))
		a, st := u.end()
		// The first row read finds the token rotated: it is the one row
		// read, not stored, so counted as rejected.
		if a.status != 401 || st.GetAccepted() != 0 || st.GetRejected() != 1 || !strings.Contains(st.GetError(), "the 1 rows read") {
			t.Fatalf("got %s, want 401 with the one row read counted as rejected", a)
		}
	})

	t.Run("a location moved to another merchant during the upload stops it", func(t *testing.T) {
		tok := s.createMerchant("MOV-A", "MOV-1", "MOV-2")
		s.createMerchant("MOV-B", "MOV-B-1")
		u := s.startUpload("MOV-A", tok, "sku,location,on_hand\n")
		u.write(rows("MOV-1", 5) + rows("MOV-2", 5))
		if a := s.admin("POST", "/v1/admin/merchants/MOV-A/locations:remove", &pb.LocationsRequest{MerchantId: "MOV-A", Locations: []string{"MOV-1"}}, nil); a.status != 200 {
			t.Fatalf("remove: %s", a)
		}
		if a := s.admin("POST", "/v1/admin/merchants/MOV-B/locations", &pb.LocationsRequest{MerchantId: "MOV-B", Locations: []string{"MOV-1"}}, nil); a.status != 200 {
			t.Fatalf("add to B: %s", a)
		}
		u.write(rows("MOV-1", 5))
		a, st := u.end()
		if a.status != 400 || st.GetState() != pb.FeedState_FEED_STATE_FAILED || st.GetAccepted() != 0 {
			t.Fatalf("got %s, want 400 (FAILED_PRECONDITION), the feed failed and no row stored", a)
		}
		if !strings.Contains(st.GetError(), "MOV-1") || !strings.Contains(st.GetError(), "no longer belong") {
			t.Errorf("error %q does not name the moved location", st.GetError())
		}
	})

	t.Run("an upload whose authorization did not change is stored", func(t *testing.T) {
		tok := s.createMerchant("KEEP-A", "KEEP-1")
		u := s.startUpload("KEEP-A", tok, "sku,location,on_hand\n")
		u.write(rows("KEEP-1", 10))
		if a := s.admin("POST", "/v1/admin/merchants/KEEP-A/locations", &pb.LocationsRequest{MerchantId: "KEEP-A", Locations: []string{"KEEP-2"}}, nil); a.status != 200 {
			t.Fatalf("add: %s", a)
		}
		u.write(rows("KEEP-1", 10))
		a, st := u.end()
		if a.status != 200 || st.GetAccepted() != 20 {
			t.Fatalf("got %s, want 200 and 20 rows stored (another location added during the upload changes nothing)", a)
		}
	})
}

// TestUploadTimeouts: a REST body or gRPC stream that sends nothing for the
// idle timeout, or takes longer than the body timeout, is stopped: 408 /
// DEADLINE_EXCEEDED, with the rows read before it stored.
func TestUploadTimeouts(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	lim := testLimits()
	// Only the idle timeout here, so that nothing else can stop these
	// subtests however slow the machine; "REST body" has its own stack.
	lim.IdleTimeout, lim.BodyTimeout = 300*time.Millisecond, 0
	s := startStack(t, stackOpts{kafka: b.Kafka, limits: lim})
	tok := s.createMerchant("SLOW-A", "SLOW-1")

	t.Run("REST idle", func(t *testing.T) {
		u := s.startUpload("SLOW-A", tok, "sku,location,on_hand\nSKU-1,SLOW-1,4\n")
		a := <-u.done // the client sends nothing more
		if a.status != 408 {
			t.Fatalf("got %s, want 408", a)
		}
		var st pb.FeedStatus
		if err := protojson.Unmarshal(a.body, &st); err != nil {
			t.Fatal(err)
		}
		if st.GetState() != pb.FeedState_FEED_STATE_FAILED || st.GetAccepted() != 1 || !strings.Contains(st.GetError(), "idle timeout") {
			t.Fatalf("got %s, want the feed failed on the idle timeout with its 1 row stored", a)
		}
	})
	t.Run("REST body", func(t *testing.T) {
		// No idle timeout here: only the body timeout can stop it, however
		// slowly the rows go through.
		lim := testLimits()
		lim.IdleTimeout, lim.BodyTimeout = 0, 500*time.Millisecond
		sb := startStack(t, stackOpts{kafka: b.Kafka, limits: lim})
		tok := sb.createMerchant("SLOW-B", "SLOW-B-1")
		u := sb.startUpload("SLOW-B", tok, "sku,location,on_hand\n")
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			if !u.write(fmt.Sprintf("SKU-%d,SLOW-B-1,1\n", i%500)) {
				break
			}
			<-tick.C
		}
		a := <-u.done
		if a.status != 408 || !strings.Contains(string(a.body), "body timeout") {
			t.Fatalf("got %s, want 408 naming the body timeout", a)
		}
	})
	t.Run("gRPC idle before the first message", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(withToken(context.Background(), tok), time.Minute)
		defer cancel()
		stream, err := pb.NewFeedServiceClient(grpcConn(t, s)).UploadFeed(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var st pb.FeedStatus
		err = stream.RecvMsg(&st) // the stream is open and sends nothing at all
		if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(status.Convert(err).Message(), "idle timeout") {
			t.Fatalf("got %v, want DEADLINE_EXCEEDED naming the idle timeout", err)
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatal("the client's own deadline ran out")
		}
	})
	t.Run("gRPC undecodable message after the first", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(withToken(context.Background(), tok), time.Minute)
		defer cancel()
		first, err := proto.Marshal(&pb.UploadFeedRequest{Merchant: "SLOW-A", Rows: []*pb.FeedRow{{Sku: "SKU-1", Location: "SLOW-1", OnHand: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		stream, err := grpcConn(t, s).NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, pb.FeedService_UploadFeed_FullMethodName, grpc.ForceCodecV2(rawBytes{}))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range [][]byte{first, {0xff, 0xff, 0xff, 0xff}} {
			if err := stream.SendMsg(m); err != nil {
				t.Fatal(err)
			}
		}
		var out []byte
		err = stream.RecvMsg(&out)
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("got %v, want INVALID_ARGUMENT for bytes that do not decode", err)
		}
	})
	t.Run("gRPC idle", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(withToken(context.Background(), tok), time.Minute)
		defer cancel()
		stream, err := pb.NewFeedServiceClient(grpcConn(t, s)).UploadFeed(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&pb.UploadFeedRequest{Merchant: "SLOW-A", Rows: []*pb.FeedRow{{Sku: "SKU-1", Location: "SLOW-1", OnHand: 1}}}); err != nil {
			t.Fatal(err)
		}
		var st pb.FeedStatus
		err = stream.RecvMsg(&st) // the stream stays open and sends nothing
		if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(status.Convert(err).Message(), "idle timeout") {
			t.Fatalf("got %v, want DEADLINE_EXCEEDED naming the idle timeout", err)
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatal("the client's own deadline ran out")
		}
	})
}

// rawBytes is a gRPC codec that sends bytes as they are.
type rawBytes struct{}

func (rawBytes) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}
func (rawBytes) Unmarshal(data mem.BufferSlice, v any) error {
	*(v.(*[]byte)) = data.Materialize()
	return nil
}
func (rawBytes) Name() string { return "proto" }
