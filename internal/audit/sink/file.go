package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
)

// FileOptions configure the NDJSON file sink.
type FileOptions struct {
	// Path is the file events are appended to (created 0600).
	Path string
	// MaxBytes is the size a file may reach before it is rotated (default
	// 100 MiB); MaxFiles how many rotated files are kept beside it
	// (Path.1 the newest, default 5).
	MaxBytes int64
	MaxFiles int
}

type fileSink struct {
	o    FileOptions
	mu   sync.Mutex
	f    *os.File
	size int64
	torn bool // a write failed: the file may end in a partial line
}

// NewFile returns a sink that appends each event as one JSON line to a
// file, synced to disk before the batch counts as delivered, and rotates
// the file by size: when a batch would take it past MaxBytes, Path
// becomes Path.1 (Path.1 becomes Path.2, and so on; the oldest beyond
// MaxFiles is removed) and a new Path is started.
func NewFile(o FileOptions) (Sink, error) {
	if o.Path == "" {
		return nil, errors.New("sink: the file sink needs a path")
	}
	if o.MaxBytes < 0 || o.MaxFiles < 0 {
		return nil, errors.New("sink: max_bytes and max_files must not be negative")
	}
	o.MaxBytes = orDefault(o.MaxBytes, 100<<20)
	o.MaxFiles = orDefault(o.MaxFiles, 5)
	return &fileSink{o: o}, nil
}

// Deliver implements Sink.
func (s *fileSink) Deliver(_ context.Context, b *Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	data := lines(b)
	if s.f == nil {
		if err := s.open(); err != nil {
			return err
		}
	}
	if s.size > 0 && s.size+int64(len(data)) > s.o.MaxBytes {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	if s.torn && s.size > 0 {
		data = append([]byte{'\n'}, data...)
	}
	n, err := s.f.Write(data)
	s.size += int64(n)
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		// Close, and let the next attempt reopen and append the whole
		// batch again (at least once; a reader skips a torn line).
		s.f.Close()
		s.f, s.torn = nil, true
		return fmt.Errorf("file sink: %w", err)
	}
	s.torn = false
	return nil
}

func (s *fileSink) open() error {
	f, err := os.OpenFile(s.o.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("file sink: %w", err)
	}
	s.f, s.size = f, st.Size()
	return nil
}

func (s *fileSink) rotate() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	s.f = nil
	name := func(i int) string { return s.o.Path + "." + strconv.Itoa(i) }
	if err := os.Remove(name(s.o.MaxFiles)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("file sink: rotating: %w", err)
	}
	for i := s.o.MaxFiles - 1; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("file sink: rotating: %w", err)
		}
	}
	if err := os.Rename(s.o.Path, name(1)); err != nil {
		return fmt.Errorf("file sink: rotating: %w", err)
	}
	return s.open()
}

// Close implements Sink.
func (s *fileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// NewWriter returns a sink that writes each event as one JSON line to w
// (stdout for the stdout sink).
func NewWriter(w io.Writer) Sink { return &writerSink{w: w} }

type writerSink struct {
	mu sync.Mutex
	w  io.Writer
}

// Deliver implements Sink.
func (s *writerSink) Deliver(_ context.Context, b *Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.w.Write(lines(b))
	return err
}

// Close implements Sink.
func (s *writerSink) Close() error { return nil }

func lines(b *Batch) []byte {
	n := 0
	for _, it := range b.Items {
		n += len(it) + 1
	}
	out := make([]byte, 0, n)
	for _, it := range b.Items {
		out = append(out, it...)
		out = append(out, '\n')
	}
	return out
}
