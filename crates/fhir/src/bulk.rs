//! Bulk NDJSON as FHIR Bulk Data writes it: a directory with one file per resource type
//! (`Patient.ndjson`), one resource per line. Resources are written as they come (buffered,
//! never held), so an export streams; a type's file is created with its first resource.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// An NDJSON directory being written.
pub struct NdjsonDir {
    dir: PathBuf,
    files: BTreeMap<String, (BufWriter<File>, u64)>,
}

impl NdjsonDir {
    /// Write into `dir` (created if missing). A file of the same name there is replaced.
    pub fn create(dir: &Path) -> io::Result<NdjsonDir> {
        std::fs::create_dir_all(dir)?;
        Ok(NdjsonDir { dir: dir.to_owned(), files: BTreeMap::new() })
    }

    /// Append `resource` to the file of its `resourceType`.
    pub fn write(&mut self, resource: &Value) -> io::Result<()> {
        let Some(kind) = resource["resourceType"].as_str().filter(|k| k.bytes().all(|b| b.is_ascii_alphabetic()))
        else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a resource without a resourceType"));
        };
        if !self.files.contains_key(kind) {
            let file = File::create(self.dir.join(format!("{kind}.ndjson")))?;
            self.files.insert(kind.to_owned(), (BufWriter::with_capacity(1 << 20, file), 0));
        }
        let Some((w, n)) = self.files.get_mut(kind) else { return Ok(()) };
        serde_json::to_writer(&mut *w, resource)?;
        w.write_all(b"\n")?;
        *n += 1;
        Ok(())
    }

    /// Flush every file; the lines written per resource type, by type name.
    pub fn finish(self) -> io::Result<Vec<(String, u64)>> {
        let mut counts = Vec::with_capacity(self.files.len());
        for (kind, (mut w, n)) in self.files {
            w.flush()?;
            counts.push((kind, n));
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_file_per_type_one_resource_per_line() {
        let dir = std::env::temp_dir().join(format!("tiercare-ndjson-{}", uuid::Uuid::now_v7()));
        let mut out = NdjsonDir::create(&dir).expect("a directory");
        for r in [
            json!({ "resourceType": "Organization", "id": "a" }),
            json!({ "resourceType": "Practitioner", "id": "b", "name": [{ "text": "李村医\n" }] }),
            json!({ "resourceType": "Organization", "id": "c" }),
        ] {
            out.write(&r).expect("written");
        }
        assert!(out.write(&json!({ "id": "x" })).is_err());
        assert!(out.write(&json!({ "resourceType": "../etc" })).is_err(), "the type names a file: letters only");
        let counts = out.finish().expect("flushed");
        assert_eq!(counts, [("Organization".to_owned(), 2), ("Practitioner".to_owned(), 1)]);
        let text = std::fs::read_to_string(dir.join("Organization.ndjson")).expect("the file");
        let ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("a line is one resource")["id"].to_string())
            .collect();
        assert_eq!(ids, ["\"a\"", "\"c\""]);
        // a newline inside a string is escaped: still one line
        assert_eq!(std::fs::read_to_string(dir.join("Practitioner.ndjson")).expect("the file").lines().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn written_lines_conform_to_the_r4_schema() {
        use tiercare_domain::facility::{Practitioner, PractitionerRole, PractitionerRoleCode};
        let Some(defs) = crate::test_support::medplum_r4() else { return };
        let mut oracle =
            crate::test_support::Oracle::new(&crate::test_support::read_json(&defs.join("fhir.schema.json")));
        let dir = std::env::temp_dir().join(format!("tiercare-ndjson-{}", uuid::Uuid::now_v7()));
        let mut out = NdjsonDir::create(&dir).expect("a directory");
        let p = Practitioner { id: uuid::Uuid::now_v7(), name: "张主任".into(), licence_number: None, phone: None };
        let role = PractitionerRole {
            id: uuid::Uuid::now_v7(),
            practitioner_id: p.id,
            facility_id: uuid::Uuid::now_v7(),
            role: PractitionerRoleCode::Physician,
            department: Some("心内科".into()),
            active: true,
        };
        out.write(&crate::registry::practitioner(&p)).expect("written");
        out.write(&crate::registry::practitioner_role(&role)).expect("written");
        for (kind, n) in out.finish().expect("flushed") {
            let text = std::fs::read_to_string(dir.join(format!("{kind}.ndjson"))).expect("the file");
            assert_eq!(text.lines().count() as u64, n);
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).expect("a resource");
                assert_eq!(oracle.errors(&v), Vec::<String>::new(), "{line}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
