//! Test images built as OCI layouts on disk and pushed with skopeo.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::write::GzEncoder;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::process::run;

#[derive(Debug, Clone)]
pub struct Desc {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Desc {
    fn json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// What was pushed, to compare with what clients pulled.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub repo: String,
    pub tag: String,
    /// Digest of the manifest (or index) the tag points to.
    pub digest: String,
    /// Per platform (`os/arch`): manifest digest and layer digests.
    pub platforms: Vec<(String, String, Vec<String>)>,
}

impl Pushed {
    pub fn layers(&self) -> &[String] {
        &self.platforms[0].2
    }
}

pub struct Layout {
    pub dir: PathBuf,
}

struct HashWriter<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(hash: Sha256) -> String {
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Deterministic bytes that do not compress (xorshift), `len` of them.
pub fn noise(seed: u64, len: usize, out: &mut impl Write) -> std::io::Result<()> {
    let mut x = seed | 1;
    let mut buf = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(buf.len());
        out.write_all(&buf[..n])?;
        left -= n;
    }
    Ok(())
}

impl Layout {
    pub fn new(dir: PathBuf) -> Result<Layout, String> {
        std::fs::create_dir_all(dir.join("blobs/sha256")).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).map_err(|e| e.to_string())?;
        Ok(Layout { dir })
    }

    fn put(&self, media_type: &str, bytes: &[u8]) -> Desc {
        let digest = hex(Sha256::new_with_prefix(bytes));
        std::fs::write(self.dir.join("blobs/sha256").join(&digest), bytes).expect("write blob");
        Desc { media_type: media_type.into(), digest: format!("sha256:{digest}"), size: bytes.len() as u64 }
    }

    /// A gzipped tar layer with one file of `size` noise bytes; returns (descriptor, diff_id).
    pub fn layer(&self, file: &str, seed: u64, size: usize) -> (Desc, String) {
        let tmp = self.dir.join("layer.tmp");
        let out = std::fs::File::create(&tmp).expect("create layer");
        let gz_hash = HashWriter { inner: out, hash: Sha256::new(), len: 0 };
        let gz = GzEncoder::new(gz_hash, flate2::Compression::fast());
        let tar_hash = HashWriter { inner: gz, hash: Sha256::new(), len: 0 };
        let mut tar = tar::Builder::new(tar_hash);
        let mut header = tar::Header::new_gnu();
        header.set_size(size as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        let mut data = Vec::new();
        let mut body: Box<dyn std::io::Read> = if size <= 1 << 20 {
            noise(seed, size, &mut data).unwrap();
            Box::new(std::io::Cursor::new(data))
        } else {
            // Stream large bodies through a pipe thread rather than holding them.
            let (r, mut w) = std::io::pipe().expect("pipe");
            std::thread::spawn(move || noise(seed, size, &mut w));
            Box::new(r)
        };
        tar.append_data(&mut header, file, &mut body).expect("append");
        let tar_hash = tar.into_inner().expect("finish tar");
        let diff_id = format!("sha256:{}", hex(tar_hash.hash));
        let gz_hash = tar_hash.inner.finish().expect("finish gzip");
        let digest = hex(gz_hash.hash);
        std::fs::rename(&tmp, self.dir.join("blobs/sha256").join(&digest)).expect("move layer");
        let desc = Desc {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest: format!("sha256:{digest}"),
            size: gz_hash.len,
        };
        (desc, diff_id)
    }

    /// An image manifest for one platform with the given layers.
    pub fn manifest(&self, arch: &str, layers: &[(Desc, String)]) -> Desc {
        let config = json!({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.1.clone()).collect::<Vec<_>>()},
        });
        let config = self.put("application/vnd.oci.image.config.v1+json", config.to_string().as_bytes());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config.json(),
            "layers": layers.iter().map(|l| l.0.json()).collect::<Vec<_>>(),
        });
        self.put("application/vnd.oci.image.manifest.v1+json", manifest.to_string().as_bytes())
    }

    pub fn index(&self, manifests: &[(&str, Desc)]) -> Desc {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests.iter().map(|(arch, d)| {
                let mut j = d.json();
                j["platform"] = json!({"architecture": arch, "os": "linux"});
                j
            }).collect::<Vec<_>>(),
        });
        self.put("application/vnd.oci.image.index.v1+json", index.to_string().as_bytes())
    }

    /// Point `index.json` of the layout at `desc` under `tag`.
    pub fn tag(&self, tag: &str, desc: &Desc) {
        let mut j = desc.json();
        j["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        let index = json!({"schemaVersion": 2, "manifests": [j]});
        std::fs::write(self.dir.join("index.json"), index.to_string()).expect("write index.json");
    }
}

/// Push `tag` of a layout to `registry` (host:port) as `repo:tag` with skopeo.
pub fn push(layout: &Path, tag: &str, registry: &str, repo: &str) -> Result<(), String> {
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--all", "--dest-tls-verify=false", "--preserve-digests"])
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{registry}/{repo}:{tag}")))
    .map(|_| ())
}

/// Build and push a small single-platform image; `seed` makes its layer unique.
pub fn push_simple(work: &Path, registry: &str, repo: &str, tag: &str, seed: u64) -> Result<Pushed, String> {
    push_single(work, registry, repo, tag, ("hello", seed, 4096))
}

/// An image whose only layer is `size` bytes of noise.
pub fn push_big(work: &Path, registry: &str, repo: &str, tag: &str, size: usize) -> Result<Pushed, String> {
    push_single(work, registry, repo, tag, ("big.bin", 42, size))
}

/// A linux/amd64 image with one layer holding one file: (name, seed, size).
fn push_single(work: &Path, registry: &str, repo: &str, tag: &str, file: (&str, u64, usize)) -> Result<Pushed, String> {
    let layout = Layout::new(work.join(format!("{}-{tag}", repo.replace('/', "_"))))?;
    let layer = layout.layer(file.0, file.1, file.2);
    let layers = vec![layer.0.digest.clone()];
    let m = layout.manifest("amd64", &[layer]);
    layout.tag(tag, &m);
    push(&layout.dir, tag, registry, repo)?;
    Ok(Pushed { repo: repo.into(), tag: tag.into(), digest: m.digest.clone(), platforms: vec![("linux/amd64".into(), m.digest, layers)] })
}

/// Build and push an index with linux/amd64 and linux/arm64 images.
pub fn push_multi(work: &Path, registry: &str, repo: &str, tag: &str, seed: u64) -> Result<Pushed, String> {
    let layout = Layout::new(work.join(format!("{}-{tag}", repo.replace('/', "_"))))?;
    let mut platforms = Vec::new();
    let mut manifests = Vec::new();
    for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
        let layer = layout.layer("hello", seed + i as u64, 4096);
        let layers = vec![layer.0.digest.clone()];
        let m = layout.manifest(arch, &[layer]);
        platforms.push((format!("linux/{arch}"), m.digest.clone(), layers));
        manifests.push((*arch, m));
    }
    let index = layout.index(&manifests);
    layout.tag(tag, &index);
    push(&layout.dir, tag, registry, repo)?;
    Ok(Pushed { repo: repo.into(), tag: tag.into(), digest: index.digest, platforms })
}
