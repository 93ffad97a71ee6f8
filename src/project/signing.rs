//! Signatures of session packs (HMAC-SHA-256), so that merging can tell a pack this project made
//! and its inspector graded from one that was edited, forged or made elsewhere.
//!
//! Keys: every project holds a random 256-bit secret (`project_meta.secret`, made with the
//! project, never copied into a pack). A pack made for inspector I gets
//! - a **content MAC** under the project secret over its candidates, pixels, scores, settings and
//!   identity (pack id, inspector, source project). Nobody without the secret can make one, so
//!   altered pixels or a pack passed off as another inspector's are refused;
//! - a **pack key** = HMAC(secret, pack id, I), stored in the pack, under which the program keeps
//!   an **events MAC** over every grade event, resealed in the same transaction as each grade.
//!   Merge re-derives the key from the secret, so a pack key cannot be made up; events edited
//!   outside lens-inspect (with `sqlite3`, say) break the events MAC. The pack key is in the
//!   pack, so its holder could re-sign edits to their own grades with it: what the holder can
//!   never do is grade as anyone else, change the pixels, or merge into another project.

use hmac::{Hmac, Mac};
use rusqlite::{Connection, OptionalExtension};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// An HMAC fed field by field: each field is length-prefixed, so ("ab", "c") and ("a", "bc")
/// sign differently.
pub struct Signer(HmacSha256);

impl Signer {
    pub fn new(key: &[u8]) -> Signer {
        // HMAC takes keys of any length; this cannot fail.
        Signer(<HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length"))
    }

    pub fn field(&mut self, bytes: &[u8]) -> &mut Signer {
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    pub fn opt_text(&mut self, text: Option<&str>) -> &mut Signer {
        match text {
            Some(t) => self.field(b"some").field(t.as_bytes()),
            None => self.field(b"none"),
        }
    }

    pub fn finish_hex(self) -> String {
        hex(&self.0.finalize().into_bytes())
    }

    /// Constant-time comparison with a stored hex MAC.
    pub fn verify_hex(self, stored: &str) -> bool {
        match unhex(stored) {
            Some(bytes) => self.0.verify_slice(&bytes).is_ok(),
            None => false,
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|k| u8::from_str_radix(&s[k..k + 2], 16).ok()).collect()
}

/// A fresh project secret: 32 bytes from the thread's CSPRNG (seeded by the operating system).
pub fn new_secret() -> String {
    hex(&rand::random::<[u8; 32]>())
}

/// The key under which a pack's events are signed: bound to the project, the pack and its
/// inspector.
pub fn pack_key(secret: &[u8], pack_id: &str, inspector: &str) -> Vec<u8> {
    let mut s = Signer::new(secret);
    s.field(b"lens-inspect pack key v1").field(pack_id.as_bytes()).field(inspector.as_bytes());
    s.0.finalize().into_bytes().to_vec()
}

/// The pack-meta keys the content MAC covers (besides candidates, pixels and scores).
pub const SIGNED_META: [&str; 6] =
    ["kind", "source_project_id", "pack_id", "pack_inspector", "pack_created_at", "display_settings"];

/// Feeds what a pack was made with: the signed meta keys, every candidate with its pixels (by
/// name), and the stored model scores (by version name and candidate name).
pub fn sign_content(conn: &Connection, secret: &[u8]) -> rusqlite::Result<Signer> {
    let mut s = Signer::new(secret);
    s.field(b"lens-inspect pack content v1");
    for key in SIGNED_META {
        let value: Option<String> =
            conn.query_row("SELECT value FROM project_meta WHERE key = ?1", [key], |r| r.get(0)).optional()?;
        s.field(key.as_bytes()).opt_text(value.as_deref());
    }
    let mut stmt = conn.prepare(
        "SELECT c.name, c.width, c.height, c.ra_deg, c.dec_deg, c.tile, c.metadata, c.sky_sigma, c.truth_is_lens,
                c.truth, c.is_training, p.data
         FROM candidates c LEFT JOIN pixels p ON p.candidate_id = c.id ORDER BY c.name",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        s.field(b"candidate").field(r.get::<_, String>(0)?.as_bytes());
        s.field(&r.get::<_, i64>(1)?.to_le_bytes()).field(&r.get::<_, i64>(2)?.to_le_bytes());
        for k in 3..5 {
            let v: Option<f64> = r.get(k)?;
            s.opt_text(v.map(|x| format!("{:016x}", x.to_bits())).as_deref());
        }
        s.opt_text(r.get::<_, Option<String>>(5)?.as_deref());
        s.field(r.get::<_, String>(6)?.as_bytes()).field(r.get::<_, String>(7)?.as_bytes());
        s.opt_text(r.get::<_, Option<i64>>(8)?.map(|v| v.to_string()).as_deref());
        s.opt_text(r.get::<_, Option<String>>(9)?.as_deref());
        s.field(&r.get::<_, i64>(10)?.to_le_bytes());
        s.field(&r.get::<_, Option<Vec<u8>>>(11)?.unwrap_or_default());
    }
    let mut stmt = conn.prepare(
        "SELECT m.name, c.name, p.score FROM predictions p JOIN model_versions m ON m.id = p.model_version_id
         JOIN candidates c ON c.id = p.candidate_id ORDER BY m.id, c.name",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        s.field(b"score").field(r.get::<_, String>(0)?.as_bytes()).field(r.get::<_, String>(1)?.as_bytes());
        s.field(&r.get::<_, f64>(2)?.to_bits().to_le_bytes());
    }
    Ok(s)
}

/// Feeds every grade event (by uid) with its candidate and inspector by name.
pub fn sign_events(conn: &Connection, pack_key: &[u8]) -> rusqlite::Result<Signer> {
    let mut s = Signer::new(pack_key);
    s.field(b"lens-inspect pack events v1");
    let mut stmt = conn.prepare(
        "SELECT e.uid, c.name, i.name, e.score, e.time, e.session_id, e.comment, e.points
         FROM grade_events e JOIN candidates c ON c.id = e.candidate_id JOIN inspectors i ON i.id = e.inspector_id
         ORDER BY e.uid",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        s.field(b"event");
        for k in [0, 1, 2] {
            s.field(r.get::<_, String>(k)?.as_bytes());
        }
        s.opt_text(r.get::<_, Option<i64>>(3)?.map(|v| v.to_string()).as_deref());
        s.field(r.get::<_, String>(4)?.as_bytes());
        for k in [5, 6, 7] {
            s.opt_text(r.get::<_, Option<String>>(k)?.as_deref());
        }
    }
    // Events whose candidate or inspector row is gone would escape the join: count them all.
    let n: i64 = conn.query_row("SELECT count(*) FROM grade_events", [], |r| r.get(0))?;
    s.field(b"count").field(&n.to_le_bytes());
    Ok(s)
}

/// Recomputes and stores a pack's events MAC; called inside the transaction that changed the
/// events, so the file is never left with events its MAC does not cover.
pub fn reseal_events(conn: &Connection, pack_key: &[u8]) -> rusqlite::Result<()> {
    let mac = sign_events(conn, pack_key)?.finish_hex();
    conn.execute("INSERT OR REPLACE INTO project_meta (key, value) VALUES ('events_mac', ?1)", [mac])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231 test case 2.
        let mut m = <HmacSha256 as Mac>::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        assert_eq!(hex(&m.finalize().into_bytes()), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn fields_are_delimited_and_verification_is_exact() {
        let mac = |parts: &[&str]| {
            let mut s = Signer::new(b"k");
            for p in parts {
                s.field(p.as_bytes());
            }
            s
        };
        let ab_c = mac(&["ab", "c"]).finish_hex();
        assert_ne!(ab_c, mac(&["a", "bc"]).finish_hex());
        assert!(mac(&["ab", "c"]).verify_hex(&ab_c));
        assert!(!mac(&["ab", "d"]).verify_hex(&ab_c));
        assert!(!mac(&["ab", "c"]).verify_hex("zz"));
        assert_eq!(unhex(&hex(&[0, 7, 255])), Some(vec![0, 7, 255]));
        assert_ne!(pack_key(b"s", "p1", "ann"), pack_key(b"s", "p1", "bob"));
        assert_ne!(pack_key(b"s", "p1", "ann"), pack_key(b"t", "p1", "ann"));
    }
}
