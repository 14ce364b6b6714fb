//! The SOAP 1.1 calls REST lacks, written and read with quick-xml:
//! `SessionManagement.GetSessionsById` (a session's processing `State`) and
//! `RemoteRecorderManagement.GetRemoteRecordersById` (a recorder's `State`), each for many
//! ids in one call, and a folder's external id (`SessionManagement.GetAllFoldersByExternalId`,
//! `UpdateFolderExternalIdWithProvider`): REST has no external ids. A `Fault` answer becomes a
//! [`SoapFault`].

use super::PanoptoError;
use super::model::{
    BasicFolder, Folder, NIL_GUID, RecorderState, RemoteRecorder, SessionState, SessionStatus, time,
};
use super::xml::Element;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde::Serialize;

pub(crate) const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub(crate) const TEMPURI: &str = "http://tempuri.org/";
pub(crate) const V40: &str =
    "http://schemas.datacontract.org/2004/07/Panopto.Server.Services.PublicAPI.V40";
pub(crate) const ARRAYS: &str = "http://schemas.microsoft.com/2003/10/Serialization/Arrays";

/// One of the SOAP operations the client calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SoapCall {
    SessionsById,
    RemoteRecordersById,
    FoldersByExternalId,
    UpdateFolderExternalIdWithProvider,
}

impl SoapCall {
    /// The service's path below the site's root.
    pub fn path(self) -> &'static str {
        match self {
            SoapCall::SessionsById
            | SoapCall::FoldersByExternalId
            | SoapCall::UpdateFolderExternalIdWithProvider => {
                "Panopto/PublicAPI/4.6/SessionManagement.svc"
            }
            SoapCall::RemoteRecordersById => "Panopto/PublicAPI/4.6/RemoteRecorderManagement.svc",
        }
    }

    /// The `SOAPAction` header's value (quoted, as SOAP 1.1 wants it).
    pub fn action(self) -> &'static str {
        match self {
            SoapCall::SessionsById => "\"http://tempuri.org/ISessionManagement/GetSessionsById\"",
            SoapCall::RemoteRecordersById => {
                "\"http://tempuri.org/IRemoteRecorderManagement/GetRemoteRecordersById\""
            }
            SoapCall::FoldersByExternalId => {
                "\"http://tempuri.org/ISessionManagement/GetAllFoldersByExternalId\""
            }
            SoapCall::UpdateFolderExternalIdWithProvider => {
                "\"http://tempuri.org/ISessionManagement/UpdateFolderExternalIdWithProvider\""
            }
        }
    }

    pub fn operation(self) -> &'static str {
        match self {
            SoapCall::SessionsById => "GetSessionsById",
            SoapCall::RemoteRecordersById => "GetRemoteRecordersById",
            SoapCall::FoldersByExternalId => "GetAllFoldersByExternalId",
            SoapCall::UpdateFolderExternalIdWithProvider => "UpdateFolderExternalIdWithProvider",
        }
    }
}

/// One parameter after `auth`. WCF reads them in the operation's declared order, so callers
/// pass them in that order; names are case-sensitive (`SiteMembershipProviderName` is
/// capitalised in Panopto's contract, the others are not).
#[derive(Debug, Clone, Copy)]
pub(crate) enum SoapArg<'a> {
    /// An `ArrayOfguid`.
    Guids(&'static str, &'a [String]),
    /// An `ArrayOfstring`.
    Strings(&'static str, &'a [String]),
    /// A `string` or `guid` value.
    Text(&'static str, &'a str),
}

impl SoapArg<'_> {
    fn size_hint(&self) -> usize {
        match self {
            SoapArg::Guids(_, items) | SoapArg::Strings(_, items) => {
                64 + items.iter().map(|i| i.len() + 32).sum::<usize>()
            }
            SoapArg::Text(_, text) => 64 + text.len(),
        }
    }
}

/// A SOAP `Fault`: `faultcode` (e.g. `s:Client`, `a:ActionNotSupported`) and `faultstring`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SoapFault {
    pub code: String,
    pub message: String,
}

impl SoapFault {
    /// A fault of the server's own making (worth trying again later), not of the request.
    pub fn is_server_fault(&self) -> bool {
        let local = self.code.rsplit(':').next().unwrap_or(&self.code);
        matches!(local, "Server" | "Receiver" | "InternalServiceFault")
    }

    /// Panopto refused the `AuthenticationInfo` (a changed or wrong SOAP password): the
    /// credentials need a person, as a refused OAuth client does.
    pub fn is_authentication_failure(&self) -> bool {
        let local = self.code.rsplit(':').next().unwrap_or(&self.code);
        let message = self.message.to_ascii_lowercase();
        matches!(local, "FailedAuthentication" | "InvalidSecurity")
            || message.contains("authentication failed")
            || message.contains("unauthorized")
    }
}

/// The `AuthenticationInfo` every SOAP call carries (user key and password).
#[derive(Clone, Copy)]
pub(crate) struct SoapAuth<'a> {
    pub user_key: &'a str,
    pub password: &'a str,
}

/// The request envelope of `call` with `args`.
pub(crate) fn request(call: SoapCall, auth: SoapAuth<'_>, args: &[SoapArg<'_>]) -> Vec<u8> {
    let size = 512 + args.iter().map(SoapArg::size_hint).sum::<usize>();
    let mut w = Writer::new(Vec::with_capacity(size));
    // Writing into a Vec cannot fail: the io::Results below are all Ok.
    let _ = write_request(&mut w, call, auth, args);
    w.into_inner()
}

fn write_request(
    w: &mut Writer<Vec<u8>>,
    call: SoapCall,
    auth: SoapAuth<'_>,
    args: &[SoapArg<'_>],
) -> std::io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
    w.write_event(Event::Start(
        BytesStart::new("s:Envelope").with_attributes([("xmlns:s", SOAP_ENV)]),
    ))?;
    w.write_event(Event::Start(BytesStart::new("s:Body")))?;
    w.write_event(Event::Start(
        BytesStart::new(call.operation()).with_attributes([("xmlns", TEMPURI)]),
    ))?;
    w.write_event(Event::Start(
        BytesStart::new("auth").with_attributes([("xmlns:a", V40)]),
    ))?;
    // DataContract members go in alphabetical order (AuthCode, Password, UserKey).
    text_element(w, "a:Password", auth.password)?;
    text_element(w, "a:UserKey", auth.user_key)?;
    w.write_event(Event::End(BytesEnd::new("auth")))?;
    for arg in args {
        match *arg {
            SoapArg::Guids(name, items) => array(w, name, "b:guid", items)?,
            SoapArg::Strings(name, items) => array(w, name, "b:string", items)?,
            SoapArg::Text(name, text) => text_element(w, name, text)?,
        }
    }
    w.write_event(Event::End(BytesEnd::new(call.operation())))?;
    w.write_event(Event::End(BytesEnd::new("s:Body")))?;
    w.write_event(Event::End(BytesEnd::new("s:Envelope")))
}

fn array(w: &mut Writer<Vec<u8>>, name: &str, item: &str, items: &[String]) -> std::io::Result<()> {
    w.write_event(Event::Start(
        BytesStart::new(name).with_attributes([("xmlns:b", ARRAYS)]),
    ))?;
    for text in items {
        text_element(w, item, text)?;
    }
    w.write_event(Event::End(BytesEnd::new(name)))
}

fn text_element(w: &mut Writer<Vec<u8>>, name: &str, text: &str) -> std::io::Result<()> {
    w.write_event(Event::Start(BytesStart::new(name)))?;
    w.write_event(Event::Text(BytesText::new(text)))?;
    w.write_event(Event::End(BytesEnd::new(name)))
}

/// The `Fault` in an answer, if it is one.
pub(crate) fn fault(body: &[u8]) -> Option<SoapFault> {
    let root = Element::parse(body).ok()?;
    let fault = soap_body(&root).ok()?.child("Fault")?;
    Some(SoapFault {
        code: fault
            .child_text("faultcode")
            .unwrap_or("unknown")
            .to_string(),
        message: fault
            .child_text("faultstring")
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect(),
    })
}

fn soap_body(root: &Element) -> Result<&Element, PanoptoError> {
    if !root.is(SOAP_ENV, "Envelope") {
        return Err(PanoptoError::Decode(
            "the SOAP answer is not a SOAP 1.1 envelope".into(),
        ));
    }
    root.children
        .iter()
        .find(|c| c.is(SOAP_ENV, "Body"))
        .ok_or_else(|| PanoptoError::Decode("the SOAP envelope has no Body".into()))
}

/// `{operation}Response`; a Fault is an error.
fn response(root: &Element, call: SoapCall) -> Result<&Element, PanoptoError> {
    let body = soap_body(root)?;
    if let Some(fault) = body.child("Fault") {
        return Err(PanoptoError::Soap(SoapFault {
            code: fault
                .child_text("faultcode")
                .unwrap_or("unknown")
                .to_string(),
            message: fault
                .child_text("faultstring")
                .unwrap_or_default()
                .to_string(),
        }));
    }
    let operation = call.operation();
    body.child(&format!("{operation}Response"))
        .ok_or_else(|| PanoptoError::Decode(format!("no {operation}Response in the SOAP answer")))
}

/// The items of `{operation}Response/{operation}Result`; a Fault is an error.
fn result_items<'a>(
    root: &'a Element,
    call: SoapCall,
    item: &'a str,
) -> Result<Vec<&'a Element>, PanoptoError> {
    let response = response(root, call)?;
    let Some(result) = response.child(&format!("{}Result", call.operation())) else {
        return Ok(Vec::new());
    };
    Ok(result.children_named(item).filter(|e| !e.nil).collect())
}

fn guids(element: Option<&Element>) -> Vec<String> {
    element
        .map(|e| {
            e.children_named("guid")
                .filter_map(|g| Some(g.text.trim()).filter(|t| !t.is_empty()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn required_id(e: &Element, what: &str) -> Result<String, PanoptoError> {
    e.child_text("Id")
        .map(str::to_string)
        .ok_or_else(|| PanoptoError::Decode(format!("a {what} in the SOAP answer has no Id")))
}

/// `GetSessionsByIdResponse` → each session's state and times.
pub(crate) fn decode_sessions(body: &[u8]) -> Result<Vec<SessionStatus>, PanoptoError> {
    let root = Element::parse(body).map_err(PanoptoError::Decode)?;
    result_items(&root, SoapCall::SessionsById, "Session")?
        .into_iter()
        .map(|s| {
            let start_time = match s.child_text("StartTime") {
                Some(text) => Some(time::parse(text).ok_or_else(|| {
                    PanoptoError::Decode("a session's StartTime is not a date-time".into())
                })?),
                None => None,
            };
            let duration = match s.child_text("Duration") {
                Some(text) => Some(text.parse::<f64>().map_err(|_| {
                    PanoptoError::Decode("a session's Duration is not a number".into())
                })?),
                None => None,
            };
            Ok(SessionStatus {
                id: required_id(s, "session")?,
                name: s.child_text("Name").unwrap_or_default().to_string(),
                state: s.child_text("State").map_or(SessionState::Unknown, |t| {
                    t.parse().unwrap_or(SessionState::Unknown)
                }),
                folder_id: s.child_text("FolderId").map(str::to_string),
                folder_name: s.child_text("FolderName").map(str::to_string),
                start_time,
                duration,
                remote_recorder_ids: guids(s.child("RemoteRecorderIds")),
                is_broadcast: s.child_text("IsBroadcast") == Some("true"),
                status_message: s.child_text("StatusMessage").map(str::to_string),
            })
        })
        .collect()
}

/// `GetRemoteRecordersByIdResponse` → each recorder with its state.
pub(crate) fn decode_recorders(body: &[u8]) -> Result<Vec<RemoteRecorder>, PanoptoError> {
    let root = Element::parse(body).map_err(PanoptoError::Decode)?;
    result_items(&root, SoapCall::RemoteRecordersById, "RemoteRecorder")?
        .into_iter()
        .map(|r| {
            Ok(RemoteRecorder {
                id: required_id(r, "remote recorder")?,
                name: r.child_text("Name").unwrap_or_default().to_string(),
                state: r.child_text("State").map_or(RecorderState::Unknown, |t| {
                    t.parse().unwrap_or(RecorderState::Unknown)
                }),
                default_recording_folder: None,
                scheduled_recordings: guids(r.child("ScheduledRecordings")),
            })
        })
        .collect()
}

/// `GetAllFoldersByExternalIdResponse` → each folder. SOAP's `Folder` names its parent by id
/// only, so `parent_folder.name` is empty.
pub(crate) fn decode_folders(body: &[u8]) -> Result<Vec<Folder>, PanoptoError> {
    let root = Element::parse(body).map_err(PanoptoError::Decode)?;
    result_items(&root, SoapCall::FoldersByExternalId, "Folder")?
        .into_iter()
        .map(|f| {
            Ok(Folder {
                id: required_id(f, "folder")?,
                name: f.child_text("Name").unwrap_or_default().to_string(),
                description: f.child_text("Description").map(str::to_string),
                parent_folder: f
                    .child_text("ParentFolder")
                    .filter(|id| *id != NIL_GUID)
                    .map(|id| BasicFolder {
                        id: id.to_string(),
                        name: String::new(),
                    }),
            })
        })
        .collect()
}

/// The answer of an operation that returns nothing: its (empty) `{operation}Response`, or
/// the Fault as an error.
pub(crate) fn decode_done(body: &[u8], call: SoapCall) -> Result<(), PanoptoError> {
    let root = Element::parse(body).map_err(PanoptoError::Decode)?;
    response(&root, call).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_a_refused_authentication_from_other_faults() {
        let fault = |code: &str, message: &str| SoapFault {
            code: code.into(),
            message: message.into(),
        };
        assert!(
            fault(
                "s:Client",
                "Authentication failed: the user key or password is not valid"
            )
            .is_authentication_failure()
        );
        assert!(fault("a:FailedAuthentication", "").is_authentication_failure());
        assert!(!fault("s:Client", "Invalid session id").is_authentication_failure());
        assert!(!fault("s:Server", "Object reference not set").is_authentication_failure());
    }

    #[test]
    fn writes_an_escaped_envelope_panopto_can_read() {
        let auth = SoapAuth {
            user_key: "api<user>",
            password: "p&ss\"word",
        };
        let ids = ["a".to_string(), "b".to_string()];
        let xml = request(
            SoapCall::SessionsById,
            auth,
            &[SoapArg::Guids("sessionIds", &ids)],
        );
        let root = Element::parse(&xml).unwrap();
        assert!(root.is(SOAP_ENV, "Envelope"));
        let op = root
            .child("Body")
            .unwrap()
            .child("GetSessionsById")
            .unwrap();
        assert_eq!(op.namespace.as_deref(), Some(TEMPURI));
        let auth = op.child("auth").unwrap();
        assert_eq!(auth.namespace.as_deref(), Some(TEMPURI));
        assert!(auth.child("UserKey").unwrap().is(V40, "UserKey"));
        assert_eq!(auth.child_text("UserKey"), Some("api<user>"));
        assert_eq!(auth.child_text("Password"), Some("p&ss\"word"));
        let ids: Vec<_> = op
            .child("sessionIds")
            .unwrap()
            .children_named("guid")
            .map(|g| (g.namespace.clone().unwrap(), g.text.clone()))
            .collect();
        assert_eq!(
            ids,
            vec![(ARRAYS.into(), "a".into()), (ARRAYS.into(), "b".into())]
        );
        let recorders = request(
            SoapCall::RemoteRecordersById,
            auth_of(),
            &[SoapArg::Guids("remoteRecorderIds", &["r".to_string()])],
        );
        let text = String::from_utf8(recorders).unwrap();
        assert!(text.contains("<GetRemoteRecordersById xmlns=\"http://tempuri.org/\">"));
        assert!(text.contains("<remoteRecorderIds"));
    }

    fn auth_of() -> SoapAuth<'static> {
        SoapAuth {
            user_key: "u",
            password: "p",
        }
    }

    const SESSIONS: &str = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
      <GetSessionsByIdResponse xmlns="http://tempuri.org/">
        <GetSessionsByIdResult xmlns:a="http://schemas.datacontract.org/2004/07/Panopto.Server.Services.PublicAPI.V40" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
          <a:Session>
            <a:CreatorId>c</a:CreatorId><a:Description i:nil="true"/><a:Duration>2987.5</a:Duration>
            <a:FolderId>f1</a:FolderId><a:FolderName>BIO 101 &amp; Lab</a:FolderName>
            <a:Id>s1</a:Id><a:IsBroadcast>false</a:IsBroadcast><a:Name>Lecture 1</a:Name>
            <a:RemoteRecorderIds xmlns:b="http://schemas.microsoft.com/2003/10/Serialization/Arrays"><b:guid>r1</b:guid></a:RemoteRecorderIds>
            <a:StartTime>2025-09-01T09:00:00Z</a:StartTime><a:State>Complete</a:State>
            <a:StatusMessage i:nil="true"/>
          </a:Session>
          <a:Session><a:Duration i:nil="true"/><a:Id>s2</a:Id><a:Name>Lecture 2</a:Name>
            <a:StartTime>2025-09-03T09:00:00.1234567+01:00</a:StartTime><a:State>Scheduled</a:State></a:Session>
          <a:Session i:nil="true"/>
        </GetSessionsByIdResult>
      </GetSessionsByIdResponse></s:Body></s:Envelope>"#;

    #[test]
    fn reads_session_states_times_and_nils() {
        let sessions = decode_sessions(SESSIONS.as_bytes()).unwrap();
        assert_eq!(sessions.len(), 2);
        let s1 = &sessions[0];
        assert_eq!(s1.id, "s1");
        assert_eq!(s1.state, SessionState::Complete);
        assert_eq!(s1.duration, Some(2987.5));
        assert_eq!(s1.folder_name.as_deref(), Some("BIO 101 & Lab"));
        assert_eq!(s1.remote_recorder_ids, vec!["r1".to_string()]);
        assert_eq!(s1.status_message, None);
        let s2 = &sessions[1];
        assert_eq!(s2.state, SessionState::Scheduled);
        assert_eq!(s2.duration, None);
        assert_eq!(
            s2.start_time.unwrap().to_rfc3339(),
            "2025-09-03T08:00:00.123456700+00:00"
        );
    }

    #[test]
    fn reads_recorder_states() {
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
          <GetRemoteRecordersByIdResponse xmlns="http://tempuri.org/">
            <GetRemoteRecordersByIdResult xmlns:a="http://schemas.datacontract.org/2004/07/Panopto.Server.Services.PublicAPI.V40" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
              <a:RemoteRecorder><a:Devices/><a:ExternalId i:nil="true"/><a:Id>r1</a:Id><a:MachineIP>10.0.0.1</a:MachineIP>
                <a:Name>SCI-101</a:Name><a:PreviewUrl i:nil="true"/>
                <a:ScheduledRecordings xmlns:b="http://schemas.microsoft.com/2003/10/Serialization/Arrays"><b:guid>s1</b:guid><b:guid>s2</b:guid></a:ScheduledRecordings>
                <a:SettingsUrl>x</a:SettingsUrl><a:State>Faulted</a:State></a:RemoteRecorder>
            </GetRemoteRecordersByIdResult></GetRemoteRecordersByIdResponse></s:Body></s:Envelope>"#;
        let recorders = decode_recorders(xml.as_bytes()).unwrap();
        assert_eq!(recorders.len(), 1);
        assert_eq!(recorders[0].state, RecorderState::Faulted);
        assert_eq!(recorders[0].scheduled_recordings, vec!["s1", "s2"]);
        // The wrong answer for the call is not silently empty.
        assert!(matches!(
            decode_sessions(xml.as_bytes()),
            Err(PanoptoError::Decode(_))
        ));
    }

    #[test]
    fn a_fault_is_a_clear_error() {
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
            <faultcode xmlns:a="http://schemas.microsoft.com/net/2005/12/windowscommunicationfoundation/dispatcher">a:ActionNotSupported</faultcode>
            <faultstring xml:lang="en-US">The message with Action 'x' cannot be processed</faultstring>
            </s:Fault></s:Body></s:Envelope>"#;
        let fault = fault(xml.as_bytes()).unwrap();
        assert_eq!(fault.code, "a:ActionNotSupported");
        assert!(!fault.is_server_fault());
        match decode_sessions(xml.as_bytes()) {
            Err(PanoptoError::Soap(f)) => assert!(f.message.contains("cannot be processed")),
            other => panic!("{other:?}"),
        }
        assert!(super::fault(SESSIONS.as_bytes()).is_none());
        assert!(super::fault(b"<html>502 Bad Gateway</html>").is_none());
        assert!(
            SoapFault {
                code: "s:Server".into(),
                message: String::new()
            }
            .is_server_fault()
        );
    }

    #[test]
    fn writes_the_external_id_calls_in_contract_order() {
        let ids = ["canvas-section-1&2".to_string()];
        let providers = ["coursewire".to_string()];
        let xml = request(
            SoapCall::FoldersByExternalId,
            auth_of(),
            &[
                SoapArg::Strings("folderExternalIds", &ids),
                SoapArg::Strings("providerNames", &providers),
            ],
        );
        let root = Element::parse(&xml).unwrap();
        let op = root
            .child("Body")
            .unwrap()
            .child("GetAllFoldersByExternalId")
            .unwrap();
        let names: Vec<_> = op.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["auth", "folderExternalIds", "providerNames"]);
        let id = op
            .child("folderExternalIds")
            .unwrap()
            .child("string")
            .unwrap();
        assert!(id.is(ARRAYS, "string"));
        assert_eq!(id.text, "canvas-section-1&2");
        assert_eq!(
            op.child("providerNames").unwrap().child_text("string"),
            Some("coursewire")
        );

        let xml = request(
            SoapCall::UpdateFolderExternalIdWithProvider,
            auth_of(),
            &[
                SoapArg::Text("folderId", "f1"),
                SoapArg::Text("externalId", "s1"),
                SoapArg::Text("SiteMembershipProviderName", "coursewire"),
            ],
        );
        let root = Element::parse(&xml).unwrap();
        let op = root
            .child("Body")
            .unwrap()
            .child("UpdateFolderExternalIdWithProvider")
            .unwrap();
        let fields: Vec<_> = op
            .children
            .iter()
            .skip(1)
            .map(|c| {
                (
                    c.namespace.as_deref().unwrap(),
                    c.name.as_str(),
                    c.text.as_str(),
                )
            })
            .collect();
        assert_eq!(
            fields,
            [
                (TEMPURI, "folderId", "f1"),
                (TEMPURI, "externalId", "s1"),
                (TEMPURI, "SiteMembershipProviderName", "coursewire"),
            ]
        );
        assert_eq!(
            SoapCall::UpdateFolderExternalIdWithProvider.action(),
            "\"http://tempuri.org/ISessionManagement/UpdateFolderExternalIdWithProvider\""
        );
        assert_eq!(
            SoapCall::FoldersByExternalId.path(),
            SoapCall::SessionsById.path()
        );
    }

    #[test]
    fn reads_folders_found_by_external_id() {
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
          <GetAllFoldersByExternalIdResponse xmlns="http://tempuri.org/">
            <GetAllFoldersByExternalIdResult xmlns:a="http://schemas.datacontract.org/2004/07/Panopto.Server.Services.PublicAPI.V46.Soap" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
              <a:Folder><a:AllowPublicNotes>false</a:AllowPublicNotes>
                <a:ChildFolders xmlns:b="http://schemas.microsoft.com/2003/10/Serialization/Arrays"/>
                <a:Description i:nil="true"/><a:Id>f1</a:Id><a:Name>BIO 101 &amp; Lab</a:Name>
                <a:ParentFolder>p1</a:ParentFolder><a:ExternalId>canvas-section-1</a:ExternalId></a:Folder>
              <a:Folder><a:Description>top</a:Description><a:Id>f2</a:Id><a:Name>Fall</a:Name>
                <a:ParentFolder i:nil="true"/><a:ExternalId>x</a:ExternalId></a:Folder>
            </GetAllFoldersByExternalIdResult></GetAllFoldersByExternalIdResponse></s:Body></s:Envelope>"#;
        let folders = decode_folders(xml.as_bytes()).unwrap();
        assert_eq!(folders.len(), 2);
        assert_eq!(folders[0].id, "f1");
        assert_eq!(folders[0].name, "BIO 101 & Lab");
        assert_eq!(folders[0].description, None);
        assert_eq!(
            folders[0].parent_folder.as_ref().map(|p| p.id.as_str()),
            Some("p1")
        );
        assert_eq!(folders[1].description.as_deref(), Some("top"));
        assert_eq!(folders[1].parent_folder, None);

        let empty = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
          <GetAllFoldersByExternalIdResponse xmlns="http://tempuri.org/"><GetAllFoldersByExternalIdResult/>
          </GetAllFoldersByExternalIdResponse></s:Body></s:Envelope>"#;
        assert!(decode_folders(empty.as_bytes()).unwrap().is_empty());
    }

    #[test]
    fn an_update_is_done_when_its_response_comes_back() {
        let call = SoapCall::UpdateFolderExternalIdWithProvider;
        let done = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
          <UpdateFolderExternalIdWithProviderResponse xmlns="http://tempuri.org/"/></s:Body></s:Envelope>"#;
        decode_done(done.as_bytes(), call).unwrap();
        let other = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
          <GetSessionsByIdResponse xmlns="http://tempuri.org/"/></s:Body></s:Envelope>"#;
        assert!(matches!(
            decode_done(other.as_bytes(), call),
            Err(PanoptoError::Decode(_))
        ));
        let fault = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
            <faultcode>s:Client</faultcode><faultstring>Folder 'f' was not found</faultstring>
            </s:Fault></s:Body></s:Envelope>"#;
        match decode_done(fault.as_bytes(), call) {
            Err(PanoptoError::Soap(f)) => assert!(!f.is_server_fault()),
            other => panic!("{other:?}"),
        }
    }
}
