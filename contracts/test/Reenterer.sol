// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC1155Receiver} from "@openzeppelin/contracts/token/ERC1155/IERC1155Receiver.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";

/// Test attacker: an account that is a contract and, the first time it receives ERC-1155 tokens
/// or ETH, calls back into `target` with a prepared payload. It records whether the reentrant
/// call went through and what it reverted with, so a test can assert the guard held.
contract Reenterer is IERC1155Receiver {
    address public target;
    bytes public payload;
    bool public attempted;
    bool public reentered;
    bytes public reentryError;

    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
        attempted = false;
    }

    /// Act as this account: forward a call (with value) and bubble up any revert.
    function execute(address to, bytes calldata data) external payable returns (bytes memory ret) {
        bool ok;
        (ok, ret) = to.call{value: msg.value}(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
    }

    function onERC1155Received(address, address, uint256, uint256, bytes calldata) external returns (bytes4) {
        _reenter();
        return IERC1155Receiver.onERC1155Received.selector;
    }

    function onERC1155BatchReceived(address, address, uint256[] calldata, uint256[] calldata, bytes calldata)
        external
        returns (bytes4)
    {
        _reenter();
        return IERC1155Receiver.onERC1155BatchReceived.selector;
    }

    receive() external payable {
        _reenter();
    }

    function supportsInterface(bytes4 id) external pure returns (bool) {
        return id == type(IERC1155Receiver).interfaceId || id == type(IERC165).interfaceId;
    }

    function _reenter() private {
        if (attempted || payload.length == 0) return;
        attempted = true;
        (reentered, reentryError) = target.call(payload);
    }
}
