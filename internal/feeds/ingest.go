package feeds

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/skuflow/skuflow/inventory"
)

// Limits bound what one feed may hold.
type Limits struct {
	// MaxBodyBytes bounds a REST body (0: no limit).
	MaxBodyBytes int64
	// MaxRowBytes bounds one line, without its line ending.
	MaxRowBytes int
	// MaxRows bounds the data rows of one feed (accepted and rejected).
	MaxRows int
	// MaxRejectedShown is how many rejected rows an answer lists.
	MaxRejectedShown int
	// MaxClockSkew is how far in the future of the receive time an as_of
	// may be.
	MaxClockSkew time.Duration
	// IdleTimeout bounds how long an upload may send nothing (a REST body
	// no byte, a gRPC stream no message) before it is stopped (0: no
	// bound).
	IdleTimeout time.Duration
	// BodyTimeout bounds how long one upload may take from its first byte
	// to its end (0: no bound).
	BodyTimeout time.Duration
}

// DefaultLimits: 1 GiB bodies, 4 KiB rows, 10 million rows, 100 rejected
// rows listed, 5 minutes of clock skew, 30 seconds idle, 1 hour per
// upload (a 1 GiB body at 300 KB/s).
func DefaultLimits() Limits {
	return Limits{MaxBodyBytes: 1 << 30, MaxRowBytes: 4096, MaxRows: 10_000_000, MaxRejectedShown: 100, MaxClockSkew: 5 * time.Minute,
		IdleTimeout: 30 * time.Second, BodyTimeout: time.Hour}
}

// Validate reports every problem with the limits.
func (l Limits) Validate() error {
	var errs []error
	if l.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("feeds: max body bytes %d is negative", l.MaxBodyBytes))
	}
	if l.MaxRowBytes < 64 || l.MaxRowBytes > 1<<20 {
		errs = append(errs, fmt.Errorf("feeds: max row bytes %d is outside 64..1048576", l.MaxRowBytes))
	}
	if l.MaxRows < 1 {
		errs = append(errs, fmt.Errorf("feeds: max rows %d must be at least 1", l.MaxRows))
	}
	if l.MaxRejectedShown < 0 || l.MaxRejectedShown > 10_000 {
		errs = append(errs, fmt.Errorf("feeds: rejected rows shown %d is outside 0..10000", l.MaxRejectedShown))
	}
	if l.MaxClockSkew < 0 {
		errs = append(errs, fmt.Errorf("feeds: max clock skew %s is negative", l.MaxClockSkew))
	}
	if l.IdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("feeds: idle timeout %s is negative (0: no bound)", l.IdleTimeout))
	}
	if l.BodyTimeout < 0 {
		errs = append(errs, fmt.Errorf("feeds: body timeout %s is negative (0: no bound)", l.BodyTimeout))
	}
	return errors.Join(errs...)
}

// Format of a feed body.
type Format int

// Formats.
const (
	CSV Format = iota + 1
	NDJSON
)

func (f Format) String() string {
	switch f {
	case CSV:
		return "csv"
	case NDJSON:
		return "ndjson"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ContentTypes accepted, for error messages.
const ContentTypes = "text/csv or application/x-ndjson"

// ErrUnsupportedMediaType is returned by FormatOf.
var ErrUnsupportedMediaType = errors.New("unsupported content type")

// FormatOf maps a Content-Type header to a format: text/csv, or
// application/x-ndjson (also application/jsonl, application/x-jsonlines),
// in UTF-8.
func FormatOf(contentType string) (Format, error) {
	if strings.TrimSpace(contentType) == "" {
		return 0, fmt.Errorf("%w: no Content-Type given; send %s", ErrUnsupportedMediaType, ContentTypes)
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, fmt.Errorf("%w: Content-Type %q does not parse; send %s", ErrUnsupportedMediaType, contentType, ContentTypes)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
		return 0, fmt.Errorf("%w: charset %q; feeds are UTF-8", ErrUnsupportedMediaType, cs)
	}
	switch mt {
	case "text/csv":
		return CSV, nil
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines":
		return NDJSON, nil
	}
	return 0, fmt.Errorf("%w: %q; send %s", ErrUnsupportedMediaType, mt, ContentTypes)
}

// Row is one parsed data row.
type Row struct {
	// Line number in the body (CSV: the header is line 1).
	Line     int
	SKU      string
	Location string
	OnHand   int64
	// AsOf is zero when the row has none.
	AsOf time.Time
}

// RowError rejects one row; the feed goes on.
type RowError struct {
	Line   int
	Reason string
}

func (e *RowError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// LimitError stops a feed that exceeds a limit.
type LimitError struct {
	Line    int // the line that crossed it (0: not known)
	Message string
}

func (e *LimitError) Error() string { return e.Message }

// TimeoutError stops an upload that sent nothing for Limits.IdleTimeout
// (Idle) or took longer than Limits.BodyTimeout. Rows read before it count.
type TimeoutError struct {
	Idle  bool
	Limit time.Duration
}

func (e *TimeoutError) Error() string {
	if e.Idle {
		return fmt.Sprintf("the upload sent nothing for %s (the idle timeout)", e.Limit)
	}
	return fmt.Sprintf("the upload took longer than %s (the body timeout)", e.Limit)
}

// HeaderError stops a CSV feed whose header is unusable.
type HeaderError struct{ Message string }

func (e *HeaderError) Error() string { return e.Message }

// TruncatedError stops a feed whose body ended early (the client went away
// or sent less than it announced). Rows read completely before it count.
type TruncatedError struct {
	Line int
	Err  error
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("upload ended early after line %d (%v): the rows before it were read, the partial line was dropped", e.Line, e.Err)
}

func (e *TruncatedError) Unwrap() error { return e.Err }

// Reader reads a feed body a row at a time.
type Reader struct {
	format  Format
	lim     Limits
	br      *bufio.Reader
	body    *countingReader
	line    int
	rows    int
	csv     *csv.Reader // CSV: parses the lines csvSrc hands it
	csvSrc  *csvSource
	cols    []int // CSV: column index of sku, location, on_hand, as_of (-1: absent)
	ncols   int
	started bool
	done    error
}

// NewReader reads body as format under lim.
func NewReader(body io.Reader, format Format, lim Limits) *Reader {
	cr := &countingReader{r: body, max: lim.MaxBodyBytes}
	r := &Reader{format: format, lim: lim, body: cr, br: bufio.NewReaderSize(cr, max(lim.MaxRowBytes+2, 4096))}
	if format == CSV {
		r.csvSrc = &csvSource{r: r}
		r.csv = csv.NewReader(r.csvSrc)
		r.csv.FieldsPerRecord = -1 // checked against the header, with the reader's own message
		r.csv.TrimLeadingSpace = true
		r.csv.ReuseRecord = true
	}
	return r
}

// Line is the number of the last line read.
func (r *Reader) Line() int { return r.line }

// Bytes read from the body so far.
func (r *Reader) Bytes() int64 { return r.body.n }

type countingReader struct {
	r   io.Reader
	n   int64
	max int64
}

var errBodyTooLarge = errors.New("body too large")

func (c *countingReader) Read(p []byte) (int, error) {
	if c.max > 0 && c.n >= c.max {
		// Is there more? Read one byte past the limit to tell.
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			return 0, errBodyTooLarge
		}
		return 0, err
	}
	if c.max > 0 && int64(len(p)) > c.max-c.n {
		p = p[:c.max-c.n]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// readLine returns the next line without its ending; io.EOF at a clean end.
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	switch {
	case err == nil:
		r.line++
		line = line[:len(line)-1]
	case errors.Is(err, bufio.ErrBufferFull):
		r.line++
		return nil, &LimitError{Line: r.line, Message: fmt.Sprintf("line %d is longer than the limit of %d bytes", r.line, r.lim.MaxRowBytes)}
	case errors.Is(err, io.EOF):
		if len(line) == 0 {
			return nil, io.EOF
		}
		r.line++ // a last line without a newline
	case errors.Is(err, errBodyTooLarge):
		return nil, &LimitError{Line: r.line + 1, Message: fmt.Sprintf("body is larger than the limit of %d bytes (stopped at line %d)", r.lim.MaxBodyBytes, r.line+1)}
	default:
		return nil, &TruncatedError{Line: r.line, Err: err}
	}
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if len(line) > r.lim.MaxRowBytes {
		return nil, &LimitError{Line: r.line, Message: fmt.Sprintf("line %d is longer than the limit of %d bytes", r.line, r.lim.MaxRowBytes)}
	}
	if r.line == 1 {
		line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	}
	return line, nil
}

// Next returns the next row. A *RowError rejects that row only; any other
// error ends the feed (io.EOF: cleanly).
func (r *Reader) Next() (Row, error) {
	if r.done != nil {
		return Row{}, r.done
	}
	row, err := r.next()
	var re *RowError
	if err != nil && !errors.As(err, &re) {
		r.done = err
	}
	return row, err
}

func (r *Reader) next() (Row, error) {
	if r.format == CSV {
		return r.nextCSV()
	}
	for {
		line, err := r.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) && r.format == CSV && !r.started {
				return Row{}, &HeaderError{Message: "the feed is empty: a CSV feed starts with the header sku,location,on_hand[,as_of]"}
			}
			return Row{}, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		r.started = true
		if err := r.countRow(r.line); err != nil {
			return Row{}, err
		}
		row, err := r.jsonRow(line)
		row.Line = r.line
		if err != nil {
			return row, &RowError{Line: r.line, Reason: err.Error()}
		}
		return row, nil
	}
}

// countRow counts a data row starting at line against MaxRows.
func (r *Reader) countRow(line int) error {
	r.rows++
	if r.rows > r.lim.MaxRows {
		return &LimitError{Line: line, Message: fmt.Sprintf("the feed has more than the limit of %d rows (stopped at line %d)", r.lim.MaxRows, line)}
	}
	return nil
}

// nextCSV reads the next CSV record with encoding/csv (RFC 4180 within a
// line: quoted fields may hold commas and doubled quotes). A record is one
// line: valid field values never hold line breaks, and a quote left open
// must cost its own row only, not swallow the rows after it, so a quoted
// field that runs past its line is rejected as that line's syntax error.
// The header is the first line that is not blank; blank lines are skipped.
func (r *Reader) nextCSV() (Row, error) {
	for {
		if err := r.csvSrc.next(); err != nil {
			if errors.Is(err, io.EOF) && !r.started {
				return Row{}, &HeaderError{Message: "the feed is empty: a CSV feed starts with the header sku,location,on_hand[,as_of]"}
			}
			return Row{}, err // io.EOF, or readLine's LimitError or TruncatedError
		}
		line := r.line
		fields, err := r.csv.Read()
		var pe *csv.ParseError
		switch {
		case errors.As(err, &pe) && !r.started:
			return Row{}, &HeaderError{Message: fmt.Sprintf("line %d: the header is not valid CSV (%s); a CSV feed starts with the header sku,location,on_hand[,as_of]", line, csvProblem(pe))}
		case errors.As(err, &pe):
			if err := r.countRow(line); err != nil {
				return Row{}, err
			}
			return Row{Line: line}, &RowError{Line: line, Reason: "not valid CSV: " + csvProblem(pe)}
		case err != nil:
			return Row{}, fmt.Errorf("line %d: reading CSV: %w", line, err) // not reached: the line is whole
		}
		for i, f := range fields {
			// Spaces around an unquoted field are not part of it (leading
			// ones encoding/csv trims already); a quoted field is kept as
			// quoted.
			if _, c := r.csv.FieldPos(i); !r.csvSrc.quoted(c) {
				fields[i] = strings.TrimRightFunc(f, unicode.IsSpace)
			}
		}
		if !r.started {
			if err := r.header(line, fields); err != nil {
				return Row{}, err
			}
			r.started = true
			continue
		}
		if err := r.countRow(line); err != nil {
			return Row{}, err
		}
		row, err := r.csvRow(fields)
		row.Line = line
		if err != nil {
			return row, &RowError{Line: line, Reason: err.Error()}
		}
		return row, nil
	}
}

// csvProblem describes a CSV syntax error without the line prefix that
// the callers give it.
func csvProblem(pe *csv.ParseError) string {
	if errors.Is(pe.Err, csv.ErrQuote) {
		return fmt.Sprintf("%v at column %d (a quoted field must close on its line)", pe.Err, pe.Column)
	}
	return fmt.Sprintf("%v at column %d", pe.Err, pe.Column)
}

// csvSource hands one reused encoding/csv reader the body one line per
// record, through readLine: so the line, body and truncation limits apply
// as they do to NDJSON, a CRLF ending arrives as LF and a first line's BOM
// is dropped. next takes the next line that is not blank; Read hands it
// over with its '\n' and then answers io.EOF until next is called again, so
// a quoted field that does not close on its line ends in a parse error
// (csv.ErrQuote) instead of reading on. encoding/csv reads through a
// bufio.Reader that only asks for more when it holds no complete line, so
// it never reads past the record it is parsing.
type csvSource struct {
	r    *Reader
	line []byte // the current line, with its '\n'
	off  int    // how much of line was handed over
}

// next makes the next line that is not blank the current one.
func (s *csvSource) next() error {
	for {
		line, err := s.r.readLine()
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		s.line, s.off = append(append(s.line[:0], line...), '\n'), 0
		return nil
	}
}

func (s *csvSource) Read(p []byte) (int, error) {
	if s.off == len(s.line) {
		return 0, io.EOF
	}
	n := copy(p, s.line[s.off:])
	s.off += n
	return n, nil
}

// quoted reports whether the field encoding/csv places at column col
// (csv.Reader.FieldPos) of the current line opens with a quote.
func (s *csvSource) quoted(col int) bool {
	j := col - 1
	return j >= 0 && j < len(s.line) && s.line[j] == '"'
}

const (
	colSKU = iota
	colLocation
	colOnHand
	colAsOf
)

var columnNames = map[string]int{"sku": colSKU, "location": colLocation, "on_hand": colOnHand, "as_of": colAsOf}

// header reads the header record, found at line.
func (r *Reader) header(line int, fields []string) error {
	r.cols = []int{-1, -1, -1, -1}
	for i, f := range fields {
		name := strings.ToLower(strings.TrimSpace(f))
		c, ok := columnNames[name]
		if !ok {
			return &HeaderError{Message: fmt.Sprintf("line %d: the header has an unknown column %q; a CSV feed starts with the header sku,location,on_hand[,as_of] (any order)", line, truncate(f, 40))}
		}
		if r.cols[c] >= 0 {
			return &HeaderError{Message: fmt.Sprintf("line %d: the header names column %q twice", line, name)}
		}
		r.cols[c] = i
	}
	var missing []string
	for name, c := range columnNames {
		if c != colAsOf && r.cols[c] < 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return &HeaderError{Message: fmt.Sprintf("line %d: the header lacks the column(s) %s; a CSV feed starts with the header sku,location,on_hand[,as_of]", line, strings.Join(missing, ", "))}
	}
	r.ncols = len(fields)
	return nil
}

// csvRow parses a data record.
func (r *Reader) csvRow(fields []string) (Row, error) {
	if len(fields) != r.ncols {
		return Row{}, fmt.Errorf("has %d fields, the header has %d", len(fields), r.ncols)
	}
	asOf := ""
	if r.cols[colAsOf] >= 0 {
		asOf = fields[r.cols[colAsOf]]
	}
	return parseRow(fields[r.cols[colSKU]], fields[r.cols[colLocation]], fields[r.cols[colOnHand]], asOf)
}

type jsonRow struct {
	SKU      *string      `json:"sku"`
	Location *string      `json:"location"`
	OnHand   *json.Number `json:"on_hand"`
	AsOf     *string      `json:"as_of"`
}

func (r *Reader) jsonRow(line []byte) (Row, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var j jsonRow
	if err := dec.Decode(&j); err != nil {
		return Row{}, fmt.Errorf("not a JSON object with sku, location, on_hand and optional as_of: %s", truncate(err.Error(), 200))
	}
	if dec.More() {
		return Row{}, errors.New("more than one JSON value on the line")
	}
	var missing []string
	if j.SKU == nil {
		missing = append(missing, "sku")
	}
	if j.Location == nil {
		missing = append(missing, "location")
	}
	if j.OnHand == nil {
		missing = append(missing, "on_hand")
	}
	if len(missing) > 0 {
		return Row{}, fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	asOf := ""
	if j.AsOf != nil {
		asOf = *j.AsOf
	}
	return parseRow(*j.SKU, *j.Location, j.OnHand.String(), asOf)
}

func parseRow(sku, location, onHand, asOf string) (Row, error) {
	row := Row{SKU: sku, Location: location}
	var errs []error
	if err := inventory.ValidateID("sku", sku); err != nil {
		errs = append(errs, err)
	}
	if err := inventory.ValidateID("location", location); err != nil {
		errs = append(errs, err)
	}
	n, err := strconv.ParseInt(onHand, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange) || (err == nil && n > inventory.MaxUnits):
		errs = append(errs, fmt.Errorf("on_hand %s is beyond the limit of %d units", truncate(onHand, 30), int64(inventory.MaxUnits)))
	case err != nil:
		errs = append(errs, fmt.Errorf("on_hand %q is not a whole number", truncate(onHand, 30)))
	case n < 0:
		errs = append(errs, fmt.Errorf("on_hand is negative (%d)", n))
	default:
		row.OnHand = n
	}
	if asOf != "" {
		t, err := time.Parse(time.RFC3339Nano, asOf)
		if err != nil {
			errs = append(errs, fmt.Errorf("as_of %q is not an RFC 3339 time such as 2026-11-21T10:00:00Z", truncate(asOf, 40)))
		} else {
			row.AsOf = t.UTC()
		}
	}
	return row, errors.Join(errs...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Check validates a parsed row against what the service knows: the
// merchant's locations and the receive time. It returns the stock level to
// store (as_of defaulted to receivedAt), or the reason to reject the row.
func Check(row Row, merchant string, owns func(location string) bool, receivedAt time.Time, lim Limits) (inventory.StockLevel, error) {
	if !owns(row.Location) {
		return inventory.StockLevel{}, fmt.Errorf("location %q is not registered to merchant %q", row.Location, merchant)
	}
	asOf := row.AsOf
	if asOf.IsZero() {
		asOf = receivedAt
	} else if asOf.After(receivedAt.Add(lim.MaxClockSkew)) {
		return inventory.StockLevel{}, fmt.Errorf("as_of %s is in the future (received at %s)", asOf.Format(time.RFC3339), receivedAt.UTC().Format(time.RFC3339))
	}
	l := inventory.StockLevel{SKU: row.SKU, Location: row.Location, OnHand: row.OnHand, AsOf: asOf.UTC()}
	if err := l.Validate(); err != nil {
		return inventory.StockLevel{}, errors.New(strings.TrimPrefix(err.Error(), inventory.ErrInvalidEvent.Error()+": "))
	}
	return l, nil
}
