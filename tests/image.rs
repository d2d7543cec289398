//! The operator image that `scripts/build-image.sh` builds with buildah and the install bundle
//! names: FROM scratch, a statically linked `iter8`, CA certificates, user 65532, no shell; the
//! binary in its root filesystem runs. (Running the image as a container is not possible in
//! this sandbox: podman's runtime is refused setrlimit; see docs/operator.md.)

use std::path::Path;
use std::process::Command;

fn buildah(args: &[&str]) -> String {
    let out = Command::new("buildah")
        .args(["--storage-driver", "vfs"])
        .args(args)
        .output()
        .expect("buildah runs (scripts/build-image.sh installs it)");
    assert!(
        out.status.success(),
        "buildah {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_image_holds_a_static_iter8_as_user_65532_and_nothing_else() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/build-image.sh"))
        .output()
        .expect("the build script runs");
    assert!(
        out.status.success(),
        "scripts/build-image.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image = String::from_utf8_lossy(&out.stdout).trim().to_string();

    // The install bundle names this image.
    let bundle = Command::new(env!("CARGO_BIN_EXE_iter8"))
        .arg("install")
        .output()
        .unwrap();
    let bundle = String::from_utf8_lossy(&bundle.stdout).into_owned();
    assert!(
        bundle.contains(&format!("image: {image}")),
        "the bundle's image is {image}"
    );

    let config: serde_json::Value =
        serde_json::from_str(&buildah(&["inspect", "--type", "image", &image])).unwrap();
    let oci = &config["OCIv1"]["config"];
    assert_eq!(oci["User"], "65532:65532");
    assert_eq!(
        oci["Entrypoint"],
        serde_json::json!(["/usr/local/bin/iter8"])
    );
    assert_eq!(oci["Cmd"], serde_json::json!(["operator"]));

    // The root filesystem: the binary, the CA bundle, and no shell.
    let container = buildah(&["from", "--pull-never", &image]);
    let mount = buildah(&["mount", &container]);
    let rootfs = Path::new(&mount);
    let files: Vec<String> = walk(rootfs)
        .into_iter()
        .map(|p| p.strip_prefix(rootfs).unwrap().display().to_string())
        .collect();
    let result = std::panic::catch_unwind(|| {
        assert!(
            files.contains(&"usr/local/bin/iter8".to_string()),
            "{files:?}"
        );
        assert!(
            files.contains(&"etc/ssl/certs/ca-certificates.crt".to_string()),
            "{files:?}"
        );
        assert!(
            !files.iter().any(|f| f.ends_with("bin/sh")),
            "no shell: {files:?}"
        );
        let binary = rootfs.join("usr/local/bin/iter8");
        // With nothing but the image's files visible.
        let version = Command::new("chroot")
            .arg(rootfs)
            .args(["/usr/local/bin/iter8", "--version"])
            .output()
            .unwrap();
        assert!(
            version.status.success(),
            "{}",
            String::from_utf8_lossy(&version.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&version.stdout).trim(),
            format!("iter8 {}", env!("CARGO_PKG_VERSION"))
        );
        // Statically linked: no program interpreter (ld.so) to find in an empty image.
        let elf = std::fs::read(&binary).unwrap();
        assert!(
            !has_interpreter(&elf),
            "the binary asks for a dynamic loader"
        );
    });
    buildah(&["umount", &container]);
    buildah(&["rm", &container]);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Whether a 64-bit little-endian ELF file has a PT_INTERP program header.
fn has_interpreter(elf: &[u8]) -> bool {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&elf[o..o + 8]);
        u64::from_le_bytes(b) as usize
    };
    assert_eq!(&elf[..4], b"\x7fELF", "an ELF file");
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let p_type = u32::from_le_bytes(elf[phoff + i * phentsize..][..4].try_into().unwrap());
        p_type == 3 // PT_INTERP
    })
}
