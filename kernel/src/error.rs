//! Kernel errors: a message for the user, usually one of Plan 9's fixed strings
//! (`abi::errors`), sometimes composed (a 9P server's reply, a path in the message).

use alloc::borrow::Cow;
use alloc::string::String;
use core::fmt;

/// An error with its user-facing message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(Cow<'static, str>);

/// Result of a kernel operation.
pub type KResult<T> = Result<T, Error>;

impl Error {
    /// The message.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the fixed error `msg`.
    pub fn is(&self, msg: &str) -> bool {
        self.0 == msg
    }
}

impl From<&'static str> for Error {
    fn from(s: &'static str) -> Self {
        Error(Cow::Borrowed(s))
    }
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error(Cow::Owned(s))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
