package feeds_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/skuflow/skuflow/internal/feeds"
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
	err := feeds.Limits{MaxBodyBytes: -1, MaxRowBytes: 1, MaxRows: 0, MaxRejectedShown: -1, MaxClockSkew: -1}.Validate()
	for _, want := range []string{"max body bytes", "max row bytes", "max rows", "rejected rows shown", "clock skew"} {
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
