//! Writing a safetensors file on a thread of its own: the tensors' bytes
//! are made on the calling thread (and its workers) while the ones before
//! them are written, through a bounded queue of reused buffers, so the
//! memory taken stays a few buffers whatever the tensors' sizes.

use std::io::Write;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

use ndarray::ArrayViewD;

use super::{CheckpointError, CheckpointFloat, SafetensorsWriter};

/// Bytes of a buffer of the queue (what a piece of a tensor takes).
pub(crate) const PIECE_BYTES: usize = 8 << 20;

/// Buffers made at most: with the one being filled and the one being
/// written, two more wait in the queue.
const BUFFERS: usize = 4;

/// Pieces waiting to be written at most (bytes of the input's maps too:
/// they take no memory of their own).
const QUEUE: usize = 4;

/// One piece of a tensor's bytes, to be written next.
enum Bytes<'a> {
    /// Bytes of the input (its map): written as they are.
    Borrowed(&'a [u8]),
    /// A buffer of the queue, given back once written.
    Owned(Vec<u8>),
}

/// The calling thread's end of [`write_on_thread`]: takes the tensors'
/// bytes, in the file's order, piece by piece.
pub(crate) struct Sink<'a> {
    queue: SyncSender<(&'a str, Bytes<'a>)>,
    /// Buffers written, given back.
    free: Receiver<Vec<u8>>,
    made: usize,
    /// Whether the writer stopped (its error is the run's).
    stopped: bool,
}

impl<'a> Sink<'a> {
    /// The error a piece sent after the writer stopped gets; the writer's
    /// own error replaces it ([`write_on_thread`]).
    fn stopped(&mut self) -> CheckpointError {
        self.stopped = true;
        CheckpointError::io(
            std::path::Path::new(""),
            "writing",
            std::io::Error::other("the writing thread stopped"),
        )
    }

    /// An empty buffer of at least [`PIECE_BYTES`] bytes of capacity: a
    /// new one while fewer than a few were made, else the next one written
    /// (its length kept: a caller that resizes it writes no zeros over the
    /// bytes it had).
    pub(crate) fn buffer(&mut self) -> Result<Vec<u8>, CheckpointError> {
        if let Ok(b) = self.free.try_recv() {
            return Ok(b);
        }
        if self.made < BUFFERS {
            self.made += 1;
            return Ok(Vec::with_capacity(PIECE_BYTES));
        }
        self.free.recv().map_err(|_| self.stopped())
    }

    fn send(&mut self, name: &'a str, bytes: Bytes<'a>) -> Result<(), CheckpointError> {
        self.queue.send((name, bytes)).map_err(|_| self.stopped())
    }

    /// The next piece of tensor `name`: a buffer of [`Sink::buffer`].
    pub(crate) fn piece(&mut self, name: &'a str, buf: Vec<u8>) -> Result<(), CheckpointError> {
        self.send(name, Bytes::Owned(buf))
    }

    /// All the bytes of tensor `name`, borrowed (from the input's map).
    pub(crate) fn borrowed(
        &mut self,
        name: &'a str,
        bytes: &'a [u8],
    ) -> Result<(), CheckpointError> {
        self.send(name, Bytes::Borrowed(bytes))
    }

    /// All the bytes of tensor `name`, copied into buffers piece by piece.
    pub(crate) fn copy(&mut self, name: &'a str, bytes: &[u8]) -> Result<(), CheckpointError> {
        // A tensor of no bytes still sends one (empty) piece, so the writer
        // sees every tensor; `chunks` of an empty slice yields none.
        let empty: &[&[u8]] = &[&[]];
        let pieces: Box<dyn Iterator<Item = &[u8]>> = if bytes.is_empty() {
            Box::new(empty.iter().copied())
        } else {
            Box::new(bytes.chunks(PIECE_BYTES))
        };
        for piece in pieces {
            let mut buf = self.buffer()?;
            buf.clear();
            buf.extend_from_slice(piece);
            self.piece(name, buf)?;
        }
        Ok(())
    }

    /// All of tensor `name` from an array (of the planned dtype and shape;
    /// any memory layout, written row-major), encoded piece by piece.
    pub(crate) fn array<T: CheckpointFloat>(
        &mut self,
        name: &'a str,
        array: ArrayViewD<'_, T>,
    ) -> Result<(), CheckpointError> {
        let mut buf = self.buffer()?;
        buf.clear();
        for x in array.iter() {
            x.write_le(&mut buf);
            if buf.len() + T::SIZE > PIECE_BYTES {
                self.piece(name, buf)?;
                buf = self.buffer()?;
                buf.clear();
            }
        }
        self.piece(name, buf)
    }
}

/// Runs `make` on the calling thread, handing it a [`Sink`] whose pieces
/// a thread of its own writes to `out` in order, and gives `out` back
/// (every piece written) for the caller to finish or commit. The first
/// error wins, the writer's where its stop made `make` fail: then nothing
/// more is written, and `out`, dropped, leaves nothing behind (a
/// [`PendingFile`](super::PendingFile) removes its temporary file).
pub(crate) fn write_on_thread<'a, W: Write + Send>(
    out: SafetensorsWriter<W>,
    make: impl FnOnce(&mut Sink<'a>) -> Result<(), CheckpointError>,
) -> Result<SafetensorsWriter<W>, CheckpointError> {
    let (queue, pieces) = sync_channel::<(&'a str, Bytes<'a>)>(QUEUE);
    let (give_back, free) = channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || write_pieces(out, pieces, give_back));
        let mut sink = Sink {
            queue,
            free,
            made: 0,
            stopped: false,
        };
        let made = make(&mut sink);
        let stopped = sink.stopped;
        // The queue closes: the writer ends once it has written the rest.
        drop(sink);
        let written = match writer.join() {
            Ok(w) => w,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        match (made, written) {
            (Err(e), _) if !stopped => Err(e),
            (_, Err(e)) => Err(e),
            (Err(e), Ok(_)) => Err(e),
            (Ok(()), Ok(out)) => Ok(out),
        }
    })
}

/// The writing thread: writes the pieces in order until the queue closes
/// or a write fails (then it stops taking pieces).
fn write_pieces<'a, W: Write>(
    mut out: SafetensorsWriter<W>,
    pieces: Receiver<(&'a str, Bytes<'a>)>,
    give_back: Sender<Vec<u8>>,
) -> Result<SafetensorsWriter<W>, CheckpointError> {
    for (name, bytes) in pieces {
        match bytes {
            Bytes::Borrowed(b) => out.write_tensor_part(name, b)?,
            Bytes::Owned(b) => {
                out.write_tensor_part(name, &b)?;
                // The calling thread may be gone already: then it is dropped.
                let _ = give_back.send(b);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Dtype, SafetensorsView, TensorSpec};

    /// A writer that fails once `limit` bytes are written.
    struct Failing {
        written: Vec<u8>,
        limit: usize,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.written.len() + buf.len() > self.limit {
                return Err(std::io::Error::other("disk full"));
            }
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn specs(n: usize) -> Vec<TensorSpec> {
        (0..n)
            .map(|i| TensorSpec::new(format!("t{i}"), Dtype::U8, vec![PIECE_BYTES + 3 * i]))
            .collect()
    }

    #[test]
    fn pieces_are_written_in_order_as_one_call_writes_them() {
        let n = 3;
        let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        let data: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                (0..PIECE_BYTES + 3 * i)
                    .map(|j| (j * 7 + i) as u8)
                    .collect()
            })
            .collect();
        let mut direct = SafetensorsWriter::new(Vec::new(), specs(n), None).unwrap();
        for (name, d) in names.iter().zip(&data) {
            direct.write_tensor_bytes(name, d).unwrap();
        }
        let direct = direct.finish().unwrap();
        let out = SafetensorsWriter::new(Vec::new(), specs(n), None).unwrap();
        let out = write_on_thread(out, |sink| {
            sink.borrowed(&names[0], &data[0])?;
            sink.copy(&names[1], &data[1])?;
            // A piece of a buffer, then the rest in buffers.
            let (head, tail) = data[2].split_at(1000);
            let mut b = sink.buffer()?;
            b.clear();
            b.extend_from_slice(head);
            sink.piece(&names[2], b)?;
            sink.copy(&names[2], tail)
        })
        .unwrap();
        let bytes = out.finish().unwrap();
        assert_eq!(bytes, direct);
        let view = SafetensorsView::parse(&bytes).unwrap();
        assert_eq!(view.get("t1").unwrap().data(), &data[1][..]);
    }

    #[test]
    fn a_failing_writer_stops_the_run_with_its_error() {
        let n = 8;
        let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        let failing = Failing {
            written: Vec::new(),
            limit: 3 * PIECE_BYTES,
        };
        let out = SafetensorsWriter::new(failing, specs(n), None).unwrap();
        let mut sent = 0;
        let err = write_on_thread(out, |sink| {
            for (i, name) in names.iter().enumerate() {
                sink.copy(name, &vec![1u8; PIECE_BYTES + 3 * i])?;
                sent += 1;
            }
            Ok(())
        })
        .unwrap_err();
        // The writer's own error, and the calling thread stopped early.
        assert!(err.to_string().contains("disk full"), "{err}");
        assert!(sent < n, "{sent}");
    }

    #[test]
    fn an_error_of_the_calling_thread_wins() {
        let out = SafetensorsWriter::new(Vec::new(), specs(2), None).unwrap();
        let err = write_on_thread(out, |sink| {
            sink.copy("t0", &vec![0u8; PIECE_BYTES])?;
            Err(CheckpointError::header("made up"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("made up"), "{err}");
        // A tensor out of order is the writer's error.
        let out = SafetensorsWriter::new(Vec::new(), specs(2), None).unwrap();
        let err = write_on_thread(out, |sink| sink.copy("t1", &[0u8; 4])).unwrap_err();
        assert!(matches!(err, CheckpointError::WriteOrder { .. }), "{err}");
    }

    #[test]
    fn arrays_are_encoded_as_write_array_encodes_them() {
        let n = PIECE_BYTES / 4 + 5;
        let a = ndarray::Array2::from_shape_fn((n, 2), |(i, j)| (i * 2 + j) as f32 - 9.5);
        // Column-major in memory: written row-major all the same.
        let t = a.t().to_owned();
        let spec = || vec![TensorSpec::new("w", Dtype::F32, vec![2, n])];
        let mut direct = SafetensorsWriter::new(Vec::new(), spec(), None).unwrap();
        direct.write_array("w", t.view().into_dyn()).unwrap();
        let direct = direct.finish().unwrap();
        let out = SafetensorsWriter::new(Vec::new(), spec(), None).unwrap();
        let out = write_on_thread(out, |sink| sink.array("w", t.view().into_dyn())).unwrap();
        assert_eq!(out.finish().unwrap(), direct);
    }
}
