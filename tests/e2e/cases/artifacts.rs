//! OCI artifacts through `oci` routes: a Helm chart pushed as an OCI
//! artifact (Helm's own media types) is pulled through the gateway by a
//! real OCI artifact client, the `oras` SDK from PyPI, in both modes, with
//! its media types and bytes kept.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::cases::WithWorld;
use crate::ensure;
use crate::support::process::run;
use crate::world::World;

pub fn tests() -> Vec<(String, WithWorld)> {
    ["redirect", "proxy"]
        .into_iter()
        .map(|mode| {
            let case: WithWorld = Box::new(move |w: &World| helm_chart_as_oci_artifact(w, mode));
            (format!("artifacts::helm_chart_via_oras_{mode}"), case)
        })
        .collect()
}

const CHART_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";

/// The Python with the `oras` SDK that `tests/run` installs.
fn oras_python() -> Result<String, String> {
    let python = std::env::var("PULLGATE_TEST_ORAS_PYTHON")
        .map_err(|_| "PULLGATE_TEST_ORAS_PYTHON is not set: tests/run installs the oras SDK from PyPI and sets it".to_string())?;
    ensure!(Path::new(&python).is_file(), "PULLGATE_TEST_ORAS_PYTHON={python} does not exist: run tests/run");
    Ok(python)
}

/// push REGISTRY REF CHART CONFIG | pull REGISTRY REF OUTDIR (prints the manifest as JSON).
const SCRIPT: &str = r#"
import json, sys, oras.client
cmd, registry, ref = sys.argv[1:4]
client = oras.client.OrasClient(hostname=registry, insecure=True)
target = f"{registry}/{ref}"
if cmd == "push":
    chart, config = sys.argv[4:6]
    client.push(target=target, files=[f"{chart}:application/vnd.cncf.helm.chart.content.v1.tar+gzip"],
                manifest_config=f"{config}:application/vnd.cncf.helm.config.v1+json", disable_path_validation=True)
else:
    manifest = client.get_manifest(target)
    client.pull(target=target, outdir=sys.argv[4])
    print(json.dumps(manifest))
"#;

fn helm_chart_as_oci_artifact(w: &World, mode: &str) -> Result<(), String> {
    let python = oras_python()?;
    let dir = w.dir(&format!("artifact-{mode}"));
    // A real chart, packaged as `helm package` would: mychart/ in a .tgz.
    let chart_dir = dir.join("src/mychart");
    std::fs::create_dir_all(chart_dir.join("templates")).map_err(|e| e.to_string())?;
    let version = if mode == "redirect" { "0.1.0" } else { "0.2.0" };
    let chart_yaml = format!("apiVersion: v2\nname: mychart\nversion: {version}\ndescription: pullgate's test chart\n");
    std::fs::write(chart_dir.join("Chart.yaml"), &chart_yaml).map_err(|e| e.to_string())?;
    std::fs::write(chart_dir.join("values.yaml"), format!("mode: {mode}\n")).map_err(|e| e.to_string())?;
    std::fs::write(chart_dir.join("templates/configmap.yaml"), "kind: ConfigMap\napiVersion: v1\nmetadata:\n  name: {{ .Release.Name }}\n")
        .map_err(|e| e.to_string())?;
    let tgz = dir.join(format!("mychart-{version}.tgz"));
    run(Command::new("tar").arg("-czf").arg(&tgz).arg("-C").arg(dir.join("src")).arg("mychart"))?;
    let config = dir.join("config.json");
    std::fs::write(&config, format!(r#"{{"apiVersion":"v2","name":"mychart","version":"{version}"}}"#)).map_err(|e| e.to_string())?;
    let script = dir.join("oras_client.py");
    std::fs::write(&script, SCRIPT).map_err(|e| e.to_string())?;

    let reference = format!("acme/charts/mychart:{version}");
    let upstream = w.anon.addr.to_string();
    run(Command::new(&python).current_dir(&dir).arg(&script).args(["push", &upstream, &reference]).arg(&tgz).arg(&config))?;

    let gw = w.gateway(&format!("artifact-{mode}-gateway"), &w.routes_anon(mode))?;
    let out = dir.join("pulled");
    let pulled = run(Command::new(&python).current_dir(&dir).arg(&script).args(["pull", &gw.addr.to_string(), &reference]).arg(&out))?;
    let manifest: Value = serde_json::from_slice(&pulled.stdout).map_err(|e| format!("manifest: {e}"))?;
    ensure!(manifest["config"]["mediaType"] == CONFIG_MEDIA_TYPE, "config media type: {manifest}");
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    ensure!(layers.len() == 1 && layers[0]["mediaType"] == CHART_MEDIA_TYPE, "layer media types: {manifest}");
    let got = std::fs::read(out.join(format!("mychart-{version}.tgz"))).map_err(|e| format!("the pulled chart: {e}"))?;
    let want = std::fs::read(&tgz).map_err(|e| e.to_string())?;
    ensure!(got == want, "the pulled chart differs from the pushed one ({} vs {} bytes)", got.len(), want.len());

    // The gateway saw a manifest and the chart's blob, on the route, in the mode asked for.
    let lines = gw.log()?;
    let manifest_path = format!("/v2/{}", reference.replace(':', "/manifests/"));
    ensure!(
        lines.iter().any(|l| l["uri"] == manifest_path.as_str() && l["route"] == "acme" && l["mode"] == mode),
        "no {mode} line for {manifest_path} in {lines:?}"
    );
    let blob = layers[0]["digest"].as_str().unwrap_or_default();
    ensure!(
        lines.iter().any(|l| l["uri"].as_str().is_some_and(|u| u.ends_with(blob)) && l["mode"] == mode),
        "no {mode} line for the chart blob {blob}"
    );
    Ok(())
}
