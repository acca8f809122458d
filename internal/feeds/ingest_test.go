package feeds_test

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/skuflow/skuflow/internal/feeds"
	"github.com/skuflow/skuflow/inventory"
)

func readAll(body string, f feeds.Format, lim feeds.Limits) (rows []feeds.Row, rejected []*feeds.RowError, stop error) {
	rd := feeds.NewReader(strings.NewReader(body), f, lim)
	for {
		row, err := rd.Next()
		var re *feeds.RowError
		switch {
		case errors.Is(err, io.EOF):
			return rows, rejected, nil
		case errors.As(err, &re):
			rejected = append(rejected, re)
		case err != nil:
			return rows, rejected, err
		default:
			rows = append(rows, row)
		}
	}
}

func TestCSVColumnsInAnyOrderWithBOMAndCRLF(t *testing.T) {
	rows, rej, err := readAll("\xef\xbb\xbfON_HAND, Location ,sku\r\n3,L-1,S-1\r\n\r\n4,L-2,S-2", feeds.CSV, feeds.DefaultLimits())
	if err != nil || len(rej) != 0 || len(rows) != 2 || rows[1] != (feeds.Row{Line: 4, SKU: "S-2", Location: "L-2", OnHand: 4}) {
		t.Fatalf("rows %v, rejected %v, err %v", rows, rej, err)
	}
}

func TestFormatOf(t *testing.T) {
	for ct, want := range map[string]feeds.Format{"text/csv": feeds.CSV, "text/csv; charset=UTF-8": feeds.CSV, "application/x-ndjson": feeds.NDJSON, "application/jsonl": feeds.NDJSON} {
		if got, err := feeds.FormatOf(ct); err != nil || got != want {
			t.Errorf("%q: %v, %v", ct, got, err)
		}
	}
	for _, ct := range []string{"", "application/json", "text/csv; charset=utf-16"} {
		if _, err := feeds.FormatOf(ct); !errors.Is(err, feeds.ErrUnsupportedMediaType) {
			t.Errorf("%q: %v", ct, err)
		}
	}
}

func TestLimitsValidateNamesEveryProblem(t *testing.T) {
	err := feeds.Limits{MaxBodyBytes: -1, MaxRowBytes: 1, MaxRows: 0, MaxRejectedShown: -1, MaxClockSkew: -1, IdleTimeout: -1, BodyTimeout: -1}.Validate()
	for _, want := range []string{"max body bytes", "max row bytes", "max rows", "rejected rows shown", "clock skew", "idle timeout", "body timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

// FuzzReader: any body gives rows, row errors or one stopping error, never
// a panic, and rows are only ever valid ones.
func FuzzReader(f *testing.F) {
	f.Add("sku,location,on_hand\nS,L,1\n", true)
	f.Add("sku,location,on_hand,as_of\nS,L,-1,x\n\"a,b\",L,2,2026-01-01T00:00:00Z", true)
	f.Add(`{"sku":"S","location":"L","on_hand":1}`+"\n[]\n{", false)
	f.Add("sku,location,on_hand\r\n\"S\r\nT\",L,1\r\n \"a\"\"b\" ,L,2\r\n\"open,L,3\n", true)
	f.Fuzz(func(t *testing.T, body string, csv bool) {
		format := feeds.NDJSON
		if csv {
			format = feeds.CSV
		}
		lim := feeds.DefaultLimits()
		lim.MaxRowBytes, lim.MaxBodyBytes, lim.MaxRows = 128, 4096, 50
		rows, _, _ := readAll(body, format, lim)
		for _, r := range rows {
			if r.SKU == "" || r.Location == "" || r.OnHand < 0 {
				t.Fatalf("invalid row accepted: %+v", r)
			}
		}
	})
}

// reasons maps the rejected rows' lines to their reasons.
func reasons(rej []*feeds.RowError) map[int]string {
	out := map[int]string{}
	for _, re := range rej {
		out[re.Line] = re.Reason
	}
	return out
}

// CSV lines are read as RFC 4180 (encoding/csv): a quoted field may hold
// commas and doubled quotes and is one field. The hand-written splitter
// this replaced cut "a,b" in two and rejected the row for its field count.
// A record is one line: a quoted field that runs past its line is that
// line's syntax error, and the next line is a row of its own.
func TestCSVQuotedFields(t *testing.T) {
	body := "sku,location,on_hand\r\n" +
		`"S-1","L-1","3"` + "\r\n" + // 2: quotes removed
		`"a,b",L-1,4` + "\r\n" + // 3: one field holding a comma
		`"S""4",L-1,5` + "\r\n" + // 4: a doubled quote is a quote
		`" S-5 ",L-1,6` + "\r\n" + // 5: spaces inside quotes are kept (and a SKU may not start or end with one)
		"  S-6 ,\tL-1 , 7  \r\n" + // 6: spaces around unquoted fields are not
		"\"S\r\n7\",L-1,8\r\n" + // 7: a quote that does not close on its line; 8: a row of its own
		"S-9,L-1,9\r\n" // 9: line numbers stay physical lines
	rows, rej, err := readAll(body, feeds.CSV, feeds.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	want := []feeds.Row{{Line: 2, SKU: "S-1", Location: "L-1", OnHand: 3}, {Line: 3, SKU: "a,b", Location: "L-1", OnHand: 4},
		{Line: 4, SKU: `S"4`, Location: "L-1", OnHand: 5}, {Line: 6, SKU: "S-6", Location: "L-1", OnHand: 7}, {Line: 9, SKU: "S-9", Location: "L-1", OnHand: 9}}
	if !slices.Equal(rows, want) {
		t.Errorf("rows %+v, want %+v", rows, want)
	}
	for line, reason := range map[int]string{5: `sku " S-5 " starts or ends with a space`, 7: `not valid CSV: extraneous or missing " in quoted-field at column 4 (a quoted field must close on its line)`, 8: `not valid CSV: bare " in non-quoted-field at column 2`} {
		if got := reasons(rej)[line]; !strings.Contains(got, reason) {
			t.Errorf("line %d rejected for %q, want it to mention %q", line, got, reason)
		}
	}
	if len(rej) != 3 {
		t.Errorf("rejected %d rows, want 3: %v", len(rej), rej)
	}
}

// SKUs as catalogues write them ('/', spaces, '+', '%', quotes, commas,
// non-ASCII letters) come through CSV, quoted where RFC 4180 wants it, and
// NDJSON unchanged; a malformed one is rejected with the SKU rule.
func TestCatalogueSKUs(t *testing.T) {
	skus := []string{`Ä-Öl 5/8" +%`, "A/B", "a b", "100% Wolle, Größe XL", "品番/001", "x+y", strings.Repeat("é", 128)}
	var csvBody, ndjson strings.Builder
	csvBody.WriteString("sku,location,on_hand\r\n")
	w := csv.NewWriter(&csvBody)
	w.UseCRLF = true
	for i, sku := range skus {
		if err := w.Write([]string{sku, "L-1", strconv.Itoa(i + 1)}); err != nil {
			t.Fatal(err)
		}
		line, err := json.Marshal(map[string]any{"sku": sku, "location": "L-1", "on_hand": i + 1})
		if err != nil {
			t.Fatal(err)
		}
		ndjson.Write(line)
		ndjson.WriteByte('\n')
	}
	w.Flush()
	if err := w.Error(); err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct {
		body string
		f    feeds.Format
	}{"CSV": {csvBody.String(), feeds.CSV}, "NDJSON": {ndjson.String(), feeds.NDJSON}} {
		rows, rej, err := readAll(tt.body, tt.f, feeds.DefaultLimits())
		if err != nil || len(rej) != 0 || len(rows) != len(skus) {
			t.Fatalf("%s: rows %+v, rejected %v, err %v\n%s", name, rows, rej, err, tt.body)
		}
		for i, row := range rows {
			if row.SKU != skus[i] || row.OnHand != int64(i+1) {
				t.Errorf("%s row %d: %+v, want sku %q", name, i, row, skus[i])
			}
		}
	}
	// The quoting matters: unquoted, a comma splits the SKU.
	if _, rej, _ := readAll("sku,location,on_hand\n100% Wolle, Größe XL,L-1,1\n", feeds.CSV, feeds.DefaultLimits()); len(rej) != 1 {
		t.Errorf("an unquoted comma: rejected %v, want the row", rej)
	}
	// Malformed SKUs are rejected with the rule.
	body := "sku,location,on_hand\n\"A\x01B\",L-1,1\n\"A/B \",L-1,1\n\"A\xffB\",L-1,1\n"
	_, rej, err := readAll(body, feeds.CSV, feeds.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	for line, words := range map[int]string{2: "control character", 3: "starts or ends with a space", 4: "not valid UTF-8"} {
		if got := reasons(rej)[line]; !strings.Contains(got, words) || !strings.Contains(got, inventory.SKURule) {
			t.Errorf("line %d rejected for %q, want %q and the rule", line, got, words)
		}
	}
	nd := `{"sku":"A\u0000B","location":"L-1","on_hand":1}` + "\n" + `{"sku":"` + strings.Repeat("x", inventory.MaxSKULength+1) + `","location":"L-1","on_hand":1}` + "\n"
	if _, rej, err = readAll(nd, feeds.NDJSON, feeds.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	for line, words := range map[int]string{1: "control character", 2: "longer than 256"} {
		if got := reasons(rej)[line]; !strings.Contains(got, words) {
			t.Errorf("NDJSON line %d rejected for %q, want %q", line, got, words)
		}
	}
}

// A row that is not valid CSV is rejected with encoding/csv's reason and
// the feed goes on; so is a row with the wrong number of fields.
func TestCSVSyntaxErrorsRejectTheRow(t *testing.T) {
	body := "sku,location,on_hand\n" +
		"S\"1,L-1,1\n" + // 2: a quote inside an unquoted field
		"\"S-2\" ,L-1,2\n" + // 3: text after a closing quote
		"S-3,L-1\n" + // 4
		"S-4,L-1,4\n" +
		"\"S-5,L-1,5\n" // 6: a quote that is never closed, at the end of the body
	rows, rej, err := readAll(body, feeds.CSV, feeds.DefaultLimits())
	if err != nil || len(rows) != 1 || rows[0].SKU != "S-4" || rows[0].Line != 5 {
		t.Fatalf("rows %+v, err %v", rows, err)
	}
	for line, reason := range map[int]string{
		2: `not valid CSV: bare " in non-quoted-field at column 2`,
		3: `not valid CSV: extraneous or missing " in quoted-field at column 5`,
		4: "has 2 fields, the header has 3",
		6: `not valid CSV: extraneous or missing " in quoted-field`,
	} {
		if got := reasons(rej)[line]; !strings.HasPrefix(got, reason) {
			t.Errorf("line %d rejected for %q, want %q", line, got, reason)
		}
	}
}

// A quote that is never closed costs its own row only: the rows after it
// are read as before (the hand-written splitter did the same; an RFC 4180
// reader across lines would swallow the rest of the feed into one field).
func TestCSVUnclosedQuoteRejectsItsRowOnly(t *testing.T) {
	for _, n := range []int{3, 300} {
		body := "sku,location,on_hand\nS-1,L-1,1\n\"S-2,L-1,2\n" + strings.Repeat("S-3,L-1,3\n", n)
		rows, rej, err := readAll(body, feeds.CSV, feeds.DefaultLimits())
		if err != nil {
			t.Fatalf("%d rows after it: %v", n, err)
		}
		if len(rows) != n+1 || rows[0].SKU != "S-1" || rows[len(rows)-1].Line != n+3 {
			t.Errorf("%d rows after it: read %d rows, want %d", n, len(rows), n+1)
		}
		if len(rej) != 1 || rej[0].Line != 3 || !strings.Contains(rej[0].Reason, "a quoted field must close on its line") {
			t.Errorf("%d rows after it: rejected %v, want line 3 only", n, rej)
		}
	}
}

func TestCSVHeader(t *testing.T) {
	rows, rej, err := readAll("\"SKU\", \" location \", on_hand ,\"as_of\"\n\nS-1,L-1,1,2026-01-02T03:04:05Z\n", feeds.CSV, feeds.DefaultLimits())
	if err != nil || len(rej) != 0 || len(rows) != 1 || rows[0].Line != 3 || rows[0].AsOf.IsZero() {
		t.Fatalf("rows %+v, rejected %v, err %v", rows, rej, err)
	}
	for body, want := range map[string]string{
		"":                           "the feed is empty",
		"\n  \r\n":                   "the feed is empty",
		"sku\nS-1\n":                 "line 1: the header lacks the column(s) location, on_hand;",
		"\nsku,where,on_hand\n":      `line 2: the header has an unknown column "where"`,
		"sku,SKU,location,on_hand\n": `the header names column "sku" twice`,
		"sku,\"location\n":           `line 1: the header is not valid CSV`,
		"sku,location,on\"hand\n":    `line 1: the header is not valid CSV (bare " in non-quoted-field at column 16)`,
	} {
		_, _, err := readAll(body, feeds.CSV, feeds.DefaultLimits())
		var he *feeds.HeaderError
		if !errors.As(err, &he) || !strings.Contains(err.Error(), want) {
			t.Errorf("body %q: %v, want a header error mentioning %q", body, err, want)
		}
	}
}

// failingReader returns its data, then err.
type failingReader struct {
	data string
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.data == "" {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// The limits stop a CSV feed at the line that crosses them, after the rows
// before it, as they stop an NDJSON feed.
func TestCSVLimits(t *testing.T) {
	lim := feeds.DefaultLimits()
	lim.MaxRowBytes, lim.MaxRows, lim.MaxBodyBytes = 64, 3, 200
	for name, c := range map[string]struct {
		body     string
		rows     int
		line     int
		contains string
	}{
		"long line": {"sku,location,on_hand\nS-1,L-1,1\nS-2,L-1," + strings.Repeat("9", 60) + "\nS-3,L-1,3\n", 1, 3, "line 3 is longer than the limit of 64 bytes"},
		"rows":      {"sku,location,on_hand\nS-1,L-1,1\nS\"2,L-1,2\n\nS-3,L-1,x\nS-4,L-1,4\n", 1, 6, "more than the limit of 3 rows (stopped at line 6)"},
		"body":      {"sku,location,on_hand\n" + strings.Repeat("S-1,L-1,1\n", 30), 2, 0, "body is larger than the limit of 200 bytes"},
	} {
		lim := lim
		if name == "body" {
			lim.MaxRows = 100
		}
		rows, _, err := readAll(c.body, feeds.CSV, lim)
		var le *feeds.LimitError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), c.contains) || (c.line > 0 && le.Line != c.line) {
			t.Errorf("%s: %v, want a limit error at line %d mentioning %q", name, err, c.line, c.contains)
		}
		if name != "body" && len(rows) != c.rows {
			t.Errorf("%s: %d rows before the limit, want %d", name, len(rows), c.rows)
		}
	}
}

// A body that breaks off keeps the complete rows and drops the partial one.
func TestCSVTruncated(t *testing.T) {
	rd := feeds.NewReader(&failingReader{data: "sku,location,on_hand\r\nS-1,L-1,1\r\nS-2,L-1,2\r\nS-3,L-1,1", err: io.ErrUnexpectedEOF}, feeds.CSV, feeds.DefaultLimits())
	var got []string
	for {
		row, err := rd.Next()
		var te *feeds.TruncatedError
		if errors.As(err, &te) {
			if te.Line != 3 || !errors.Is(err, io.ErrUnexpectedEOF) || !slices.Equal(got, []string{"S-1", "S-2"}) {
				t.Fatalf("%v after rows %v", err, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("%v after rows %v, want a truncated upload", err, got)
		}
		got = append(got, row.SKU)
	}
}
