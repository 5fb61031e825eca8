// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Withdrawing ETH credited to an account (pull payments).
/// @notice ETH leaves RunRegistry (stakes) and ModelTokens (sale proceeds) only through a withdrawal
/// the payee sends itself, so a payee that cannot receive blocks no one else. Both withdraw the same
/// way — zero the balance, emit their own event, send, undo everything if the send fails — written
/// here once. The caller keeps the order (`_takeOwed`, emit, `_sendToCaller`) and is `nonReentrant`,
/// so a receiver calling back finds its balance already zero and the guard closed.
/// The two errors are also what each contract's own claims revert with, so they are declared here.
abstract contract PullPayments {
    error NothingToClaim();
    error TransferFailed();

    /// The caller's balance in `owed`, zeroed before any call out (NothingToClaim if it is zero).
    function _takeOwed(mapping(address => uint256) storage owed) internal returns (uint256 amount) {
        amount = owed[msg.sender];
        if (amount == 0) revert NothingToClaim();
        owed[msg.sender] = 0;
    }

    /// Send `amount` wei to the caller; if its receiver refuses, the whole withdrawal reverts.
    function _sendToCaller(uint256 amount) internal {
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }
}
