//! Decompression of a batch's records section, with a hard cap on the output.
//!
//! The broker stores compressed batches as they came, but must look inside them to validate records and to find
//! offsets by timestamp. A few kilobytes of zstd or gzip can expand to gigabytes, so every codec here stops and
//! fails as soon as the output would pass `max_bytes`; memory grows only with output actually produced, never
//! with a size a client claims.
//!
//! Snappy comes in two framings: the Java client writes xerial's `SnappyOutputStream` framing (16-byte magic
//! header, then length-prefixed blocks) while librdkafka writes one raw snappy block. Kafka's reader (xerial's
//! `SnappyInputStream`) accepts both, so do we. LZ4 is the LZ4 frame format, zstd a zstd frame, gzip one or more
//! gzip members.

use std::io::Read;

use super::record_batch::CompressionCodec;

/// Why a records section could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    #[error("decompressed size exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("corrupt {codec:?} data: {reason}")]
    Corrupt { codec: CompressionCodec, reason: String },
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

/// Decompresses `input` compressed with `codec`, failing once the output would exceed `max_bytes`.
pub fn decompress(codec: CompressionCodec, input: &[u8], max_bytes: usize) -> Result<Vec<u8>, DecompressError> {
    let corrupt = |reason: String| DecompressError::Corrupt { codec, reason };
    match codec {
        CompressionCodec::None => {
            if input.len() > max_bytes {
                return Err(DecompressError::TooLarge { limit: max_bytes });
            }
            Ok(input.to_vec())
        }
        CompressionCodec::Gzip => read_capped(flate2::read::MultiGzDecoder::new(input), max_bytes, codec),
        CompressionCodec::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(input).map_err(|e| corrupt(e.to_string()))?;
            read_capped(decoder, max_bytes, codec)
        }
        CompressionCodec::Lz4 => {
            let decoder = lz4::Decoder::new(input).map_err(|e| corrupt(e.to_string()))?;
            read_capped(decoder, max_bytes, codec)
        }
        CompressionCodec::Snappy => {
            if input.len() >= XERIAL_HEADER_LEN && &input[..XERIAL_MAGIC.len()] == XERIAL_MAGIC {
                snappy_xerial(&input[XERIAL_HEADER_LEN..], max_bytes)
            } else {
                let mut out = Vec::new();
                snappy_raw_block(input, max_bytes, &mut out)?;
                Ok(out)
            }
        }
        CompressionCodec::Unknown(id) => Err(corrupt(format!("unknown compression codec id {id}"))),
    }
}

fn read_capped(reader: impl Read, max_bytes: usize, codec: CompressionCodec) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    // One byte more than allowed tells "exactly at the limit" from "over it" without reading further.
    let limit = (max_bytes as u64).saturating_add(1);
    reader.take(limit).read_to_end(&mut out).map_err(|e| DecompressError::Corrupt { codec, reason: e.to_string() })?;
    if out.len() > max_bytes {
        return Err(DecompressError::TooLarge { limit: max_bytes });
    }
    Ok(out)
}

fn snappy_raw_block(block: &[u8], max_bytes: usize, out: &mut Vec<u8>) -> Result<(), DecompressError> {
    let corrupt = |reason: String| DecompressError::Corrupt { codec: CompressionCodec::Snappy, reason };
    // The block header states its decompressed length; check it before allocating anything.
    let len = snap::raw::decompress_len(block).map_err(|e| corrupt(e.to_string()))?;
    if out.len().saturating_add(len) > max_bytes {
        return Err(DecompressError::TooLarge { limit: max_bytes });
    }
    let start = out.len();
    out.resize(start + len, 0);
    let written = snap::raw::Decoder::new().decompress(block, &mut out[start..]).map_err(|e| corrupt(e.to_string()))?;
    out.truncate(start + written);
    Ok(())
}

fn snappy_xerial(mut blocks: &[u8], max_bytes: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    while !blocks.is_empty() {
        if blocks.len() < 4 {
            return Err(DecompressError::Corrupt {
                codec: CompressionCodec::Snappy,
                reason: "truncated xerial block length".to_string(),
            });
        }
        let len = u32::from_be_bytes([blocks[0], blocks[1], blocks[2], blocks[3]]) as usize;
        let rest = &blocks[4..];
        if len > rest.len() {
            return Err(DecompressError::Corrupt {
                codec: CompressionCodec::Snappy,
                reason: format!("xerial block of {len} bytes but only {} remain", rest.len()),
            });
        }
        snappy_raw_block(&rest[..len], max_bytes, &mut out)?;
        blocks = &rest[len..];
    }
    Ok(out)
}

/// Compresses a records section with `codec`, as Kafka's producer-side streams frame it (the cleaner re-encodes
/// retained records with the source batch's codec). Snappy uses xerial framing, as the Java client writes it.
pub fn compress(codec: CompressionCodec, input: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    match codec {
        CompressionCodec::None => Ok(input.to_vec()),
        CompressionCodec::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(input)?;
            encoder.finish()
        }
        CompressionCodec::Snappy => {
            let mut out = Vec::with_capacity(input.len() / 2 + XERIAL_HEADER_LEN);
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for block in input.chunks(32 * 1024) {
                let compressed = encoder.compress_vec(block).map_err(std::io::Error::other)?;
                out.extend_from_slice(&(compressed.len() as i32).to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            Ok(out)
        }
        CompressionCodec::Lz4 => {
            let mut encoder = lz4::EncoderBuilder::new().build(Vec::new())?;
            encoder.write_all(input)?;
            let (out, result) = encoder.finish();
            result.map(|()| out)
        }
        CompressionCodec::Zstd => zstd::encode_all(input, 3),
        CompressionCodec::Unknown(id) => {
            Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("unknown compression codec id {id}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample() -> Vec<u8> {
        (0..10_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect()
    }

    #[test]
    fn every_codec_round_trips() {
        let data = sample();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decompress(CompressionCodec::Gzip, &gz, 1 << 20).unwrap(), data);

        let zs = zstd::encode_all(&data[..], 3).unwrap();
        assert_eq!(decompress(CompressionCodec::Zstd, &zs, 1 << 20).unwrap(), data);

        let mut lz = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        lz.write_all(&data).unwrap();
        let (lz, result) = lz.finish();
        result.unwrap();
        assert_eq!(decompress(CompressionCodec::Lz4, &lz, 1 << 20).unwrap(), data);

        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(CompressionCodec::Snappy, &raw, 1 << 20).unwrap(), data);
    }

    #[test]
    fn snappy_accepts_xerial_framing() {
        let data = sample();
        let mut framed = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        for chunk in data.chunks(3000) {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
            framed.extend_from_slice(&block);
        }
        assert_eq!(decompress(CompressionCodec::Snappy, &framed, 1 << 20).unwrap(), data);
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 8 << 20];
        let zs = zstd::encode_all(&zeros[..], 3).unwrap();
        assert!(zs.len() < 4096);
        assert!(matches!(decompress(CompressionCodec::Zstd, &zs, 1 << 20), Err(DecompressError::TooLarge { .. })));
        let raw = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
        assert!(matches!(decompress(CompressionCodec::Snappy, &raw, 1 << 20), Err(DecompressError::TooLarge { .. })));
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        for codec in [CompressionCodec::Gzip, CompressionCodec::Zstd, CompressionCodec::Lz4, CompressionCodec::Snappy] {
            assert!(decompress(codec, b"\x01\x02garbage-garbage", 1 << 20).is_err(), "{codec:?}");
        }
        assert!(decompress(CompressionCodec::Unknown(6), b"", 10).is_err());
    }
}
