"""
What every store provides: accounts and contact lists behind Deferreds.

A store answers each call with a Deferred that fires only once the change
is durable (committed), so a reply confirming it can be sent at once.  The
SQLite store (L{msnp.store.sqlite.ThreadedStore}) and the PostgreSQL store
(L{msnp.store.postgres.PostgresStore}) both provide L{IStore}, with the same
results and the same errors: L{AccountExists}, L{NoSuchAccount},
L{UnknownAccount}, L{GroupIdTaken} and L{StoreUnavailable} (the database
cannot be reached; nothing was changed), all but the first two
L{StoreError}s.

@see: L{msnp.store.records} for the records handed out.
"""

from __future__ import annotations

from zope.interface import Interface


class IStore(Interface):
    """
    Durable accounts, lists, groups, privacy settings and phone properties.
    Every method returns a Deferred; the results named are what it fires
    with.
    """

    def start():
        """
        Open the store (and create its schema where missing).  Calls made
        before it fires wait for it.  Fires with None.
        """

    def stop():
        """
        Finish pending work and close.  Fires with None.
        """

    # Accounts

    def create_account(handle, password, friendly_name=None, keep_md5=True):
        """
        A new account with group 0 and list version 1.  C{keep_md5} False
        stores only the slow hash (no MD5 login).  Fires with the
        L{Account}; fails with L{AccountExists}.
        """

    def set_password(handle, password, keep_md5=True):
        """
        Replace both password forms.  Fails with L{NoSuchAccount}.
        """

    def purge_md5_passwords():
        """
        Forget every account's MD5 password-equivalent.  Fires with how
        many accounts had one.
        """

    def set_locked(handle, locked):
        """
        Lock an account (every login refused like a wrong password) or
        unlock it.  Fails with L{NoSuchAccount}.
        """

    def delete_account(handle):
        """
        Remove an account and every entry for it in others' lists, moving
        those owners' list versions on.  Fires with the new list version of
        each of those owners, by handle.  Fails with L{NoSuchAccount}.
        """

    def list_accounts():
        """
        Fires with every L{Account}, ordered by handle.
        """

    def get_account(handle):
        """
        Fires with the L{Account}, or None when there is none.
        """

    def load_user(handle, admit=None):
        """
        Fires with the L{UserState} of an account, or None when there is
        none, or when C{admit} (called with the L{Account}, on the store's
        thread) returns false.
        """

    def contact_properties(handles, viewer=None):
        """
        Fires with {handle: {key: value}} for those of C{handles} that have
        phone properties; with C{viewer}, only those whose privacy (BL,
        AL, BLP) lets the viewer see them.
        """

    # Edits: each is one transaction that moves the list version of every
    # account it changes on by one.  An unknown owner or contact fails with
    # UnknownAccount.

    def add_to_list(owner, lst, contact, name, group_id=None, federated=False):
        """
        Put C{contact} on the owner's list C{lst} (in group C{group_id});
        an FL entry also puts the owner on the contact's RL.  Fires with a
        L{ListChange} (the contact's version only when its RL changed).
        With C{federated} (the contact's domain is a federated peer's) a
        contact without an account is listed too, and no RL changes.
        """

    def add_federated_watcher(owner, watcher, name):
        """
        Put C{watcher}, a user of a federated domain who asked to see the
        owner, on the owner's RL.  Fires with the owner's new list version,
        or None when the watcher was there already.
        """

    def entries_in_domains(domains):
        """
        Fires with every list entry naming a contact of one of C{domains}:
        (owner, list, contact, name) tuples, in the order they were added.
        """

    def add_to_group(owner, contact, group_id):
        """
        Fires with the owner's new list version.
        """

    def remove_from_group(owner, contact, group_id):
        """
        Fires with the owner's new list version.
        """

    def remove_from_list(owner, lst, contact):
        """
        Take C{contact} off the owner's list C{lst}; an FL removal also
        drops its group memberships and the owner from the contact's RL.
        Fires with a L{ListChange}.
        """

    def rename_contact(owner, contact, name):
        """
        The name the owner's lists (not RL) show for C{contact}.  Fires
        with the owner's new list version.
        """

    def set_friendly_name(owner, name):
        """
        Fires with the owner's new list version.
        """

    def set_privacy(owner, setting, value):
        """
        C{setting} is "gtc" or "blp" (anything else: ValueError).  Fires
        with the owner's new list version.
        """

    def set_property(owner, key, value):
        """
        A phone property (PHH, PHW, PHM, MOB, MBE); an empty value removes
        it.  Fires with the owner's new list version.
        """

    def add_group(owner, group_id, name):
        """
        Fires with the owner's new list version; fails with GroupIdTaken
        when the id is already taken.
        """

    def rename_group(owner, group_id, name):
        """
        Fires with the owner's new list version.
        """

    def remove_group(owner, group_id, dropped_contacts):
        """
        Remove a group; C{dropped_contacts} (only in that group) leave the
        FL with it.  Fires with a L{GroupRemoval}.
        """

    # Offline messages (MSNP13+)

    def store_offline_message(recipient, message, max_count, max_bytes):
        """
        Keep C{message} (an L{msnp.store.records.OfflineMessage}) for
        C{recipient}; fails with L{msnp.store.records.MailboxFull} when
        the recipient holds C{max_count} messages or C{max_bytes} of text
        already, and with L{msnp.store.records.UnknownAccount} when there
        is no such account.  Fires with None once committed.
        """

    def offline_messages(recipient):
        """
        Fires with the recipient's L{OfflineMessage}s, oldest first.
        """

    def delete_offline_messages(recipient, message_ids):
        """
        Delete those of C{message_ids} the recipient holds; fires with the
        ids deleted.
        """
