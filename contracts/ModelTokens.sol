// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC1155} from "@openzeppelin/contracts/token/ERC1155/ERC1155.sol";
import {ERC1155Supply} from "@openzeppelin/contracts/token/ERC1155/extensions/ERC1155Supply.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {PullPayments} from "./PullPayments.sol";

// Largest credential supply of a run: supply × 1e18 < 2^188, so the re-issue accumulator has room
// for ~2^68 re-issues of the whole supply before it could overflow (RunRegistry checks it at
// openRun, ModelTokens again at activation).
uint256 constant MAX_CREDENTIALS = type(uint128).max;

/// @title Ownership and inference credentials of the models the swarm trains.
/// @notice ERC-1155 so wallets and marketplaces show both tokens of a run side by side:
///   id 2·run   — ownership units (risk-adjusted MFLOPs of verified work, plus the designer share)
///   id 2·run+1 — inference credentials
/// Spending a credential moves it into this contract's re-issue pool, from which the run's owners
/// pull it back pro rata to ownership. Credentials are never burnt or minted after activation, so
/// their supply is constant: what a buyer spends is what owners earn.
///
/// Reentrancy: every function of this contract that calls out to another account (a receiver hook
/// on delivering tokens, an ETH transfer) is `nonReentrant` and writes its state before the call.
/// The others only write this contract's storage. ERC-1155's own transfers (safeTransferFrom,
/// safeBatchTransferFrom) are not guarded, so a receiver may act in its hook (spend what it just
/// received); `_update` settles re-issue accrual of both sides before the hook runs.
contract ModelTokens is ERC1155Supply, AccessControl, ReentrancyGuard, EIP712, PullPayments {
    /// The run registry: mints ownership from settled epochs and activates trained runs.
    bytes32 public constant REGISTRY_ROLE = keccak256("REGISTRY_ROLE");
    /// The swarm's coordinator: records that a spend was served.
    bytes32 public constant SERVER_ROLE = keccak256("SERVER_ROLE");

    /// Fixed point of the re-issue accumulator (credentials per ownership unit).
    uint256 private constant ACC = 1e18;
    uint256 public constant MAX_CREDENTIAL_SUPPLY = MAX_CREDENTIALS;
    bytes32 private constant SPEND_TYPEHASH =
        keccak256("Spend(address buyer,uint256 runId,uint256 amount,bytes32 promptHash,uint256 nonce,uint256 deadline)");

    struct Pool {
        uint256 ownershipTotal; // units that exist or can still be claimed; fixed at activation
        uint256 ownershipMinted;
        uint256 accPerUnit; // credentials re-issued per ownership unit, scaled by ACC
        uint256 remainder; // scaled credentials not yet divisible over ownershipTotal (dust carried)
        uint256 reissued; // credentials put into the pool: the initial supply plus every spend
        uint256 paidOut; // credentials owners have pulled from the pool
    }

    struct Listing {
        address seller;
        uint256 runId;
        uint256 amount; // credentials still for sale, held here in escrow
        uint256 price; // wei per credential
    }

    struct Spend {
        address buyer;
        uint256 runId;
        uint256 amount;
        bytes32 promptHash;
        bool served;
    }

    mapping(uint256 runId => Pool) public pools;
    mapping(uint256 runId => mapping(address owner => uint256)) private owedScaled;
    mapping(uint256 runId => mapping(address owner => uint256)) private accSeen;
    mapping(uint256 listingId => Listing) public listings;
    uint256 public listingCount;
    /// Per run, the listings with credentials still for sale (closed ones are removed, so a reader
    /// never wades through sold-out or cancelled listings).
    mapping(uint256 runId => uint256[]) private openIds;
    mapping(uint256 listingId => uint256) private openSlot; // index in openIds + 1; 0: closed
    mapping(address seller => uint256) public proceeds;
    mapping(uint256 spendId => Spend) public spends;
    uint256 public spendCount;
    mapping(address buyer => uint256) public nonces;

    event Activated(uint256 indexed runId, uint256 ownershipTotal, uint256 credentialSupply);
    event Reissued(uint256 indexed runId, uint256 amount, uint256 accPerUnit);
    event CredentialsClaimed(uint256 indexed runId, address indexed owner, uint256 amount);
    event CredentialSpent(uint256 indexed spendId, uint256 indexed runId, address indexed buyer, uint256 amount, bytes32 promptHash);
    event InferenceServed(uint256 indexed spendId, bytes32 answerHash);
    event Listed(uint256 indexed listingId, uint256 indexed runId, address indexed seller, uint256 amount, uint256 price);
    event Bought(uint256 indexed listingId, address indexed buyer, uint256 amount, uint256 paid);
    event ListingCancelled(uint256 indexed listingId, uint256 returned);
    event ProceedsWithdrawn(address indexed seller, uint256 amount);
    event NonceInvalidated(address indexed buyer, uint256 nonce);

    error NotActive(uint256 runId);
    error AlreadyActive(uint256 runId);
    error OwnershipCapExceeded(uint256 runId, uint256 minted, uint256 total);
    error ZeroAmount();
    error BadSignature();
    error Expired(uint256 deadline);
    error UnknownSpend(uint256 spendId);
    error AlreadyServed(uint256 spendId);
    error UnknownListing(uint256 listingId);
    error ListingClosed(uint256 listingId);
    error SupplyTooLarge(uint256 credentialSupply);
    error NotSeller(uint256 listingId);
    error InsufficientListing(uint256 listingId, uint256 available, uint256 wanted);
    error WrongPayment(uint256 expected, uint256 paid);

    constructor(address admin, string memory uri_) ERC1155(uri_) EIP712("SwarmModelTokens", "1") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    function ownershipId(uint256 runId) public pure returns (uint256) {
        return runId * 2;
    }

    function credentialId(uint256 runId) public pure returns (uint256) {
        return runId * 2 + 1;
    }

    // ---- registry side -------------------------------------------------------------------------

    /// Mint the run's credential supply into the pool, shared by `ownershipTotal` units of ownership.
    function activate(uint256 runId, uint256 ownershipTotal, uint256 credentialSupply) external onlyRole(REGISTRY_ROLE) {
        Pool storage p = pools[runId];
        if (p.ownershipTotal != 0) revert AlreadyActive(runId);
        if (ownershipTotal == 0 || credentialSupply == 0) revert ZeroAmount();
        if (credentialSupply > MAX_CREDENTIAL_SUPPLY) revert SupplyTooLarge(credentialSupply);
        if (p.ownershipMinted > ownershipTotal) revert OwnershipCapExceeded(runId, p.ownershipMinted, ownershipTotal);
        p.ownershipTotal = ownershipTotal;
        _update(address(0), address(this), _one(credentialId(runId)), _one(credentialSupply));
        _distribute(runId, credentialSupply);
        emit Activated(runId, ownershipTotal, credentialSupply);
    }

    /// Ownership claimed from a settled epoch (or the designer share). Calls the receiver hook.
    function mintOwnership(uint256 runId, address to, uint256 amount) external onlyRole(REGISTRY_ROLE) nonReentrant {
        if (amount == 0) revert ZeroAmount();
        Pool storage p = pools[runId];
        p.ownershipMinted += amount;
        if (p.ownershipTotal != 0 && p.ownershipMinted > p.ownershipTotal) {
            revert OwnershipCapExceeded(runId, p.ownershipMinted, p.ownershipTotal);
        }
        _mint(to, ownershipId(runId), amount, "");
    }

    // ---- owners: re-issued credentials ---------------------------------------------------------

    /// Credentials `owner` can pull now (whole credentials; the fraction stays accrued).
    function pendingCredentials(uint256 runId, address owner) external view returns (uint256) {
        return accruedCredentials(runId, owner) / ACC;
    }

    /// Everything re-issued to `owner` and not yet pulled, fraction included, scaled by 1e18: a
    /// small owner sees each spend add its share before the share makes a whole credential.
    function accruedCredentials(uint256 runId, address owner) public view returns (uint256) {
        uint256 acc = pools[runId].accPerUnit;
        return owedScaled[runId][owner] + balanceOf(owner, ownershipId(runId)) * (acc - accSeen[runId][owner]);
    }

    function claimCredentials(uint256 runId) external nonReentrant returns (uint256 amount) {
        _settle(runId, msg.sender);
        amount = owedScaled[runId][msg.sender] / ACC;
        if (amount == 0) revert NothingToClaim();
        owedScaled[runId][msg.sender] -= amount * ACC;
        pools[runId].paidOut += amount;
        emit CredentialsClaimed(runId, msg.sender, amount);
        _safeTransferFrom(address(this), msg.sender, credentialId(runId), amount, "");
    }

    // ---- buyers: spend on inference ------------------------------------------------------------

    function spend(uint256 runId, uint256 amount, bytes32 promptHash) external nonReentrant returns (uint256) {
        return _spend(msg.sender, runId, amount, promptHash);
    }

    /// A spend the buyer signed (EIP-712) and anyone relays. The domain binds chain and contract;
    /// the nonce makes each signature good for one spend.
    function spendWithSig(
        address buyer,
        uint256 runId,
        uint256 amount,
        bytes32 promptHash,
        uint256 deadline,
        bytes calldata signature
    ) external nonReentrant returns (uint256) {
        if (block.timestamp > deadline) revert Expired(deadline);
        bytes32 digest = spendDigest(buyer, runId, amount, promptHash, nonces[buyer]++, deadline);
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        if (err != ECDSA.RecoverError.NoError || signer != buyer) revert BadSignature();
        return _spend(buyer, runId, amount, promptHash);
    }

    /// Revoke a signed spend not yet relayed: burns the caller's next nonce, so every signature
    /// made with it is refused (a relay already in a block before this one still stands).
    function invalidateNonce() external returns (uint256 nonce) {
        nonce = nonces[msg.sender]++;
        emit NonceInvalidated(msg.sender, nonce);
    }

    /// The EIP-712 digest a buyer signs for `spendWithSig`.
    function spendDigest(address buyer, uint256 runId, uint256 amount, bytes32 promptHash, uint256 nonce, uint256 deadline)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(SPEND_TYPEHASH, buyer, runId, amount, promptHash, nonce, deadline)));
    }

    function markServed(uint256 spendId, bytes32 answerHash) external onlyRole(SERVER_ROLE) {
        Spend storage s = spends[spendId];
        if (s.buyer == address(0)) revert UnknownSpend(spendId);
        if (s.served) revert AlreadyServed(spendId);
        s.served = true;
        emit InferenceServed(spendId, answerHash);
    }

    // ---- fixed-price listings ------------------------------------------------------------------

    function list(uint256 runId, uint256 amount, uint256 price) external nonReentrant returns (uint256 listingId) {
        if (amount == 0 || price == 0) revert ZeroAmount();
        _update(msg.sender, address(this), _one(credentialId(runId)), _one(amount));
        listingId = ++listingCount;
        listings[listingId] = Listing(msg.sender, runId, amount, price);
        openIds[runId].push(listingId);
        openSlot[listingId] = openIds[runId].length;
        emit Listed(listingId, runId, msg.sender, amount, price);
    }

    function buy(uint256 listingId, uint256 amount) external payable nonReentrant {
        Listing storage l = listings[listingId];
        if (l.seller == address(0)) revert UnknownListing(listingId);
        if (amount == 0) revert ZeroAmount();
        if (amount > l.amount) revert InsufficientListing(listingId, l.amount, amount);
        if (msg.value != amount * l.price) revert WrongPayment(amount * l.price, msg.value);
        l.amount -= amount;
        if (l.amount == 0) _close(listingId, l.runId);
        proceeds[l.seller] += msg.value;
        emit Bought(listingId, msg.sender, amount, msg.value);
        _safeTransferFrom(address(this), msg.sender, credentialId(l.runId), amount, "");
    }

    function cancelListing(uint256 listingId) external nonReentrant {
        Listing storage l = listings[listingId];
        if (l.seller == address(0)) revert UnknownListing(listingId);
        if (l.seller != msg.sender) revert NotSeller(listingId);
        uint256 amount = l.amount;
        if (amount == 0) revert ListingClosed(listingId);
        l.amount = 0;
        _close(listingId, l.runId);
        emit ListingCancelled(listingId, amount);
        _safeTransferFrom(address(this), msg.sender, credentialId(l.runId), amount, "");
    }

    /// How many listings of `runId` have credentials for sale.
    function openListingCount(uint256 runId) external view returns (uint256) {
        return openIds[runId].length;
    }

    /// Up to `limit` open listings of `runId` from position `offset` (in no particular order: a
    /// closed listing's place is taken by the last one), with their ids.
    function openListings(uint256 runId, uint256 offset, uint256 limit) external view returns (uint256[] memory ids, Listing[] memory page) {
        uint256[] storage all = openIds[runId];
        uint256 n = offset >= all.length ? 0 : all.length - offset;
        if (n > limit) n = limit;
        ids = new uint256[](n);
        page = new Listing[](n);
        for (uint256 i; i < n; ++i) {
            ids[i] = all[offset + i];
            page[i] = listings[ids[i]];
        }
    }

    function withdrawProceeds() external nonReentrant {
        uint256 amount = _takeOwed(proceeds);
        emit ProceedsWithdrawn(msg.sender, amount);
        _sendToCaller(amount);
    }

    // ---- internals -----------------------------------------------------------------------------

    /// Remove a listing with nothing left for sale from its run's open set (swap with the last).
    function _close(uint256 listingId, uint256 runId) private {
        uint256[] storage all = openIds[runId];
        uint256 slot = openSlot[listingId];
        uint256 last = all[all.length - 1];
        all[slot - 1] = last;
        openSlot[last] = slot;
        all.pop();
        delete openSlot[listingId];
    }

    function _spend(address buyer, uint256 runId, uint256 amount, bytes32 promptHash) private returns (uint256 spendId) {
        if (pools[runId].ownershipTotal == 0) revert NotActive(runId);
        if (amount == 0) revert ZeroAmount();
        _update(buyer, address(this), _one(credentialId(runId)), _one(amount));
        _distribute(runId, amount);
        spendId = ++spendCount;
        spends[spendId] = Spend(buyer, runId, amount, promptHash, false);
        emit CredentialSpent(spendId, runId, buyer, amount, promptHash);
    }

    /// Share `amount` credentials over all ownership units. The division's remainder is carried to
    /// the next distribution, so accPerUnit·ownershipTotal + remainder = reissued·ACC always holds
    /// and owners can never be owed more than was put in.
    function _distribute(uint256 runId, uint256 amount) private {
        Pool storage p = pools[runId];
        uint256 scaled = amount * ACC + p.remainder;
        p.accPerUnit += scaled / p.ownershipTotal;
        p.remainder = scaled % p.ownershipTotal;
        p.reissued += amount;
        emit Reissued(runId, amount, p.accPerUnit);
    }

    function _settle(uint256 runId, address owner) private {
        uint256 acc = pools[runId].accPerUnit;
        owedScaled[runId][owner] += balanceOf(owner, ownershipId(runId)) * (acc - accSeen[runId][owner]);
        accSeen[runId][owner] = acc;
    }

    /// Ownership changing hands settles both sides first, so accrual follows the units held at each
    /// moment. Freshly minted units count from activation: they were earned before it.
    function _update(address from, address to, uint256[] memory ids, uint256[] memory values) internal override {
        for (uint256 i; i < ids.length; ++i) {
            if (ids[i] % 2 == 1) continue;
            uint256 runId = ids[i] / 2;
            if (from != address(0)) _settle(runId, from);
            if (to != address(0)) {
                _settle(runId, to);
                if (from == address(0)) owedScaled[runId][to] += values[i] * pools[runId].accPerUnit;
            }
        }
        super._update(from, to, ids, values);
    }

    function _one(uint256 x) private pure returns (uint256[] memory a) {
        a = new uint256[](1);
        a[0] = x;
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC1155, AccessControl) returns (bool) {
        return super.supportsInterface(interfaceId);
    }
}
