package service_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/skuflow/skuflow/internal/testkit"
	pb "github.com/skuflow/skuflow/proto/skuflow/v1"
)

// TestBadInput sends every kind of broken feed: each gets a clear answer,
// nothing panics, and every row that was acknowledged reaches the supply
// topic exactly as acknowledged.
func TestBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded broker")
	}
	b := testkit.StartBroker(t)
	s := startStack(t, stackOpts{kafka: b.Kafka, publish: true})
	tok := s.createMerchant("MERCH-A", "A-1")
	acked := map[string]int64{} // sku -> on_hand acknowledged (unique SKUs per case)
	ack := func(st *pb.FeedStatus, rows map[string]int64) {
		t.Helper()
		if int(st.GetAccepted()) != len(rows) {
			t.Fatalf("feed %s accepted %d rows, want %d: %v", st.GetFeedId(), st.GetAccepted(), len(rows), st)
		}
		for k, v := range rows {
			acked[k] = v
		}
	}
	reasons := func(st *pb.FeedStatus) map[int32]string {
		out := map[int32]string{}
		for _, r := range st.GetRejectedRows() {
			out[r.GetLine()] = r.GetReason()
		}
		return out
	}

	t.Run("malformed CSV rows are rejected with line and reason", func(t *testing.T) {
		a, st := s.upload("MERCH-A", tok, "text/csv; charset=utf-8",
			"sku,location,on_hand,as_of\r\nCSV-1,A-1,5,\r\nCSV-2,A-1\r\nCSV-3,A-1,-3,\r\nCSV-4,A-1,1000000000001,\r\nCSV-5,A-1,99999999999999999999,\r\n"+
				"CSV-6,A-1,1.5,\r\nbad\x01sku,A-1,1,\r\nCSV-8,A-1,4,yesterday\r\nCSV-9,A-1,4,2999-01-01T00:00:00Z\r\n\"CSV-10\",\"A-1\",\"7\",\"2026-01-02T03:04:05Z\"\r\n")
		if a.status != 200 || st.GetState() != pb.FeedState_FEED_STATE_COMPLETE {
			t.Fatalf("got %s", a)
		}
		ack(st, map[string]int64{"CSV-1": 5, "CSV-10": 7})
		if st.GetRejected() != 8 || len(st.GetRejectedRows()) != 5 {
			t.Fatalf("rejected %d (%d shown), want 8 (5 shown: the limit)", st.GetRejected(), len(st.GetRejectedRows()))
		}
		want := map[int32]string{
			3: "has 2 fields, the header has 4",
			4: "on_hand is negative (-3)",
			5: "on_hand 1000000000001 is beyond the limit of 1000000000000 units",
			6: "on_hand 99999999999999999999 is beyond the limit of 1000000000000 units",
			7: `on_hand "1.5" is not a whole number`,
		}
		for line, reason := range reasons(st) {
			if want[line] != reason {
				t.Errorf("line %d: %q, want %q", line, reason, want[line])
			}
		}
	})
	t.Run("malformed NDJSON rows are rejected with line and reason", func(t *testing.T) {
		a, st := s.upload("MERCH-A", tok, "application/x-ndjson",
			`{"sku":"JS-1","location":"A-1","on_hand":3}`+"\n"+
				`{"sku":"JS-2","location":"A-1","on_hand":3`+"\n"+
				`{"sku":"JS-3","location":"A-1"}`+"\n"+
				`{"sku":"JS-4","location":"A-1","on_hand":-1}`+"\n"+
				`{"sku":"JS-5","location":"A-1","on_hand":2,"colour":"red"}`+"\n"+
				`[1,2,3]`+"\n\n"+
				`{"sku":"JS-7","location":"A-1","on_hand":1e30}`+"\n"+
				`{"sku":"JS-8","location":"A-1","on_hand":8,"as_of":"2026-11-01T00:00:00Z"}`)
		if a.status != 200 {
			t.Fatalf("got %s", a)
		}
		ack(st, map[string]int64{"JS-1": 3, "JS-8": 8})
		r := reasons(st)
		for line, want := range map[int32]string{2: "not a JSON object", 3: "missing on_hand", 4: "on_hand is negative (-1)", 5: `unknown field "colour"`} {
			if !strings.Contains(r[line], want) {
				t.Errorf("line %d: %q, want it to mention %q", line, r[line], want)
			}
		}
		if st.GetRejected() != 6 {
			t.Errorf("rejected %d, want 6", st.GetRejected())
		}
	})
	t.Run("a header that is not ours is a 400", func(t *testing.T) {
		for body, want := range map[string]string{
			"":                             "the feed is empty",
			"sku,where,on_hand\nX,A-1,1\n": `unknown column "where"`,
			"sku,location\nX,A-1\n":        "lacks the column(s) on_hand",
			"\x00\x01\x02binary":           "unknown column",
		} {
			a, st := s.upload("MERCH-A", tok, "text/csv", body)
			if a.status != 400 || !strings.Contains(st.GetError(), want) || st.GetAccepted() != 0 {
				t.Errorf("body %q: got %s, want 400 mentioning %q", body, a, want)
			}
		}
	})
	t.Run("wrong content types are a 415", func(t *testing.T) {
		for _, ct := range []string{"", "application/json", "text/plain", "text/csv; charset=latin1", "multipart/form-data; boundary=x", ";;;"} {
			a := s.do("POST", "/v1/merchants/MERCH-A/feeds", tok, ct, strings.NewReader("sku,location,on_hand\nX,A-1,1\n"))
			if a.status != 415 || !strings.Contains(errorMessage(t, a), "content type") && !strings.Contains(errorMessage(t, a), "Content-Type") && !strings.Contains(errorMessage(t, a), "charset") {
				t.Errorf("Content-Type %q: got %s, want 415", ct, a)
			}
		}
	})
	t.Run("an oversized row stops the feed; the rows before it stay accepted", func(t *testing.T) {
		a, st := s.upload("MERCH-A", tok, "text/csv", "sku,location,on_hand\nROW-1,A-1,1\nROW-2,A-1,2\nROW-3,A-1,"+strings.Repeat("9", 300)+"\nROW-4,A-1,4\n")
		if a.status != 413 || st.GetState() != pb.FeedState_FEED_STATE_FAILED || !strings.Contains(st.GetError(), "line 4 is longer than the limit of 256 bytes") {
			t.Fatalf("got %s", a)
		}
		ack(st, map[string]int64{"ROW-1": 1, "ROW-2": 2})
	})
	t.Run("too many rows stop the feed", func(t *testing.T) {
		var sb strings.Builder
		sb.WriteString("sku,location,on_hand\n")
		want := map[string]int64{}
		for i := range 1005 {
			fmt.Fprintf(&sb, "MANY-%d,A-1,%d\n", i, i)
			if i < 1000 {
				want[fmt.Sprintf("MANY-%d", i)] = int64(i)
			}
		}
		a, st := s.upload("MERCH-A", tok, "text/csv", sb.String())
		if a.status != 413 || !strings.Contains(st.GetError(), "more than the limit of 1000 rows") {
			t.Fatalf("got %d %s", a.status, st.GetError())
		}
		ack(st, want)
	})
	t.Run("an oversized body is refused up front when announced", func(t *testing.T) {
		req, _ := http.NewRequest("POST", s.base+"/v1/merchants/MERCH-A/feeds", strings.NewReader(strings.Repeat("x", 70<<10)))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "text/csv")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || !strings.Contains(string(body), "larger than the limit of 65536 bytes; nothing was stored") {
			t.Fatalf("got %d %s", resp.StatusCode, body)
		}
	})
	t.Run("an oversized chunked body stops where it crosses the limit", func(t *testing.T) {
		pad := strings.Repeat("p", 50) // ~70-byte rows: the body limit comes before the row limit
		pr, pw := io.Pipe()
		go func() {
			fmt.Fprint(pw, "sku,location,on_hand\n")
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(pw, "BIG-%05d-%s,A-1,%d\n", i, pad, i%7); err != nil {
					return
				}
			}
		}()
		req, _ := http.NewRequest("POST", s.base+"/v1/merchants/MERCH-A/feeds", pr)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "text/csv")
		resp, err := http.DefaultClient.Do(req)
		pw.CloseWithError(io.ErrClosedPipe)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 413 || !strings.Contains(string(body), "body is larger than the limit of 65536 bytes") {
			t.Fatalf("got %d %s", resp.StatusCode, body)
		}
		st := &pb.FeedStatus{}
		if err := jsonUnmarshal(body, st); err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{}
		for i := range int(st.GetAccepted()) {
			want[fmt.Sprintf("BIG-%05d-%s", i, pad)] = int64(i % 7)
		}
		ack(st, want)
	})
	t.Run("a truncated upload keeps the complete rows and drops the partial one", func(t *testing.T) {
		conn, err := net.Dial("tcp", s.serve.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		body := "sku,location,on_hand\nTR-1,A-1,11\nTR-2,A-1,22\nTR-3,A-1,12" // "345\n" never arrives
		fmt.Fprintf(conn, "POST /v1/merchants/MERCH-A/feeds HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: text/csv\r\nContent-Length: %d\r\n\r\n%s",
			tok, len(body)+4, body)
		conn.(*net.TCPConn).CloseWrite()
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		st := &pb.FeedStatus{}
		if err := jsonUnmarshal(got, st); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 400 || !strings.Contains(st.GetError(), "upload ended early") {
			t.Fatalf("got %d %s", resp.StatusCode, got)
		}
		ack(st, map[string]int64{"TR-1": 11, "TR-2": 22})
	})

	// Nothing acknowledged is lost: the supply topic holds exactly the
	// acknowledged rows.
	testkit.Eventually(t, 30*time.Second, func() error {
		got := map[string]int64{}
		for _, l := range supplyLevels(t, s.kafka) {
			if l.GetLocation() != "A-1" || l.GetSequence() == 0 || l.GetAsOf() == nil {
				return fmt.Errorf("unexpected level %v", l)
			}
			got[l.GetSku()] = l.GetOnHand()
		}
		if len(got) != len(acked) {
			return fmt.Errorf("supply has %d SKUs, %d were acknowledged", len(got), len(acked))
		}
		for k, v := range acked {
			if got[k] != v {
				return fmt.Errorf("%s: supply has %d, %d was acknowledged", k, got[k], v)
			}
		}
		return nil
	})
	if strings.Contains(s.logs.String(), "panic") {
		t.Errorf("a panic was logged:\n%s", s.logs.String())
	}
}
