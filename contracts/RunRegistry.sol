// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ModelTokens} from "./ModelTokens.sol";

/// @title Training runs and their epoch settlement.
/// @notice A designer opens a run with a stake; providers join; the coordinator posts one Merkle
/// root per epoch of *cumulative* risk-adjusted units per contributor (OpenZeppelin's standard tree,
/// leaves (address, uint256)). A root is claimable once its challenge window has passed without a
/// veto. Claims mint ownership to the leaf's account, `cumulative − claimed`, so any later root
/// settles everything earlier ones did not.
///
/// Stake: returned to the designer when the run is trained, or when it is abandoned before any
/// root settled. A run abandoned after a root settled forfeits the stake to that root's
/// contributors, pro rata to their units.
contract RunRegistry is AccessControl, ReentrancyGuard {
    bytes32 public constant COORDINATOR_ROLE = keccak256("COORDINATOR_ROLE");
    bytes32 public constant VETO_ROLE = keccak256("VETO_ROLE");
    uint16 public constant BPS = 10_000;
    /// The designer's share of ownership can never exceed 20 %.
    uint16 public constant MAX_DESIGNER_BPS = 2_000;
    uint64 public constant MAX_CHALLENGE_WINDOW = 30 days;

    enum State {
        None,
        Open,
        Training,
        Trained,
        Abandoned
    }

    struct Run {
        address designer;
        State state;
        uint16 designerBps;
        uint64 challengeWindow;
        uint256 stake;
        uint256 computeTarget; // risk-adjusted units the final root must reach
        uint256 credentialSupply;
        uint256 providers;
        uint256 epochs; // roots posted, vetoed ones included
        uint256 settledEpoch; // the root ownership (Trained) or the stake (Abandoned) is paid from
        bool designerPaid;
        bytes32 modelHash; // commits to the model spec the swarm trains
        uint256 stakePaid; // of an abandoned run's stake, credited to contributors so far
    }

    struct Epoch {
        bytes32 root;
        uint256 total; // sum of the cumulative units in the tree
        uint64 claimableAt;
        bool vetoed;
    }

    ModelTokens public immutable tokens;
    uint256 public runCount;
    mapping(uint256 runId => Run) public runs;
    mapping(uint256 runId => mapping(uint256 epoch => Epoch)) public epochs;
    mapping(uint256 runId => mapping(address provider => bool)) public joined;
    mapping(uint256 runId => mapping(address account => uint256)) public claimed;
    mapping(uint256 runId => mapping(address account => bool)) public stakeClaimed;
    mapping(address account => uint256) public withdrawable;

    event RunOpened(uint256 indexed runId, address indexed designer, uint256 stake, uint256 computeTarget, uint16 designerBps, uint256 credentialSupply, uint64 challengeWindow, bytes32 modelHash);
    event Joined(uint256 indexed runId, address indexed provider);
    event TrainingStarted(uint256 indexed runId);
    event EpochPosted(uint256 indexed runId, uint256 indexed epoch, bytes32 root, uint256 total, uint64 claimableAt);
    event EpochVetoed(uint256 indexed runId, uint256 indexed epoch);
    event Trained(uint256 indexed runId, uint256 indexed epoch, uint256 ownershipTotal, uint256 designerUnits);
    event Abandoned(uint256 indexed runId, bool stakeToProviders, uint256 epoch);
    event OwnershipClaimed(uint256 indexed runId, address indexed account, uint256 indexed epoch, uint256 amount);
    event DesignerShareClaimed(uint256 indexed runId, address indexed designer, uint256 amount);
    event StakeShareClaimed(uint256 indexed runId, address indexed account, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);

    error UnknownRun(uint256 runId);
    error WrongState(uint256 runId, State state);
    error BadParameter(string what);
    error AlreadyJoined(uint256 runId, address provider);
    error NotJoined(uint256 runId, address account);
    error NotDesigner(uint256 runId);
    error UnknownEpoch(uint256 runId, uint256 epoch);
    error EpochNotClaimable(uint256 runId, uint256 epoch);
    error ChallengeWindowOver(uint256 runId, uint256 epoch);
    error TotalDecreased(uint256 previous, uint256 posted);
    error TargetNotReached(uint256 total, uint256 target);
    error InvalidProof();
    error NothingToClaim();
    error StakeExceeded(uint256 runId);
    error TransferFailed();

    constructor(address admin, ModelTokens tokens_) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        tokens = tokens_;
    }

    // ---- lifecycle -----------------------------------------------------------------------------

    function openRun(uint256 computeTarget, uint16 designerBps, uint256 credentialSupply, uint64 challengeWindow, bytes32 modelHash)
        external
        payable
        returns (uint256 runId)
    {
        if (msg.value == 0) revert BadParameter("stake");
        if (computeTarget == 0) revert BadParameter("computeTarget");
        if (designerBps > MAX_DESIGNER_BPS) revert BadParameter("designerBps");
        if (credentialSupply == 0) revert BadParameter("credentialSupply");
        if (challengeWindow > MAX_CHALLENGE_WINDOW) revert BadParameter("challengeWindow");
        runId = ++runCount;
        Run storage r = runs[runId];
        r.designer = msg.sender;
        r.state = State.Open;
        r.designerBps = designerBps;
        r.challengeWindow = challengeWindow;
        r.stake = msg.value;
        r.computeTarget = computeTarget;
        r.credentialSupply = credentialSupply;
        r.modelHash = modelHash;
        emit RunOpened(runId, msg.sender, msg.value, computeTarget, designerBps, credentialSupply, challengeWindow, modelHash);
    }

    function join(uint256 runId) external {
        Run storage r = _run(runId);
        if (r.state != State.Open && r.state != State.Training) revert WrongState(runId, r.state);
        if (joined[runId][msg.sender]) revert AlreadyJoined(runId, msg.sender);
        joined[runId][msg.sender] = true;
        r.providers++;
        emit Joined(runId, msg.sender);
    }

    function startTraining(uint256 runId) external onlyRole(COORDINATOR_ROLE) {
        Run storage r = _inState(runId, State.Open);
        if (r.providers == 0) revert BadParameter("no providers");
        r.state = State.Training;
        emit TrainingStarted(runId);
    }

    function postEpoch(uint256 runId, bytes32 root, uint256 total) external onlyRole(COORDINATOR_ROLE) returns (uint256 epoch) {
        Run storage r = _inState(runId, State.Training);
        if (root == bytes32(0) || total == 0) revert BadParameter("root");
        // Units are cumulative: a root that shrinks the total cannot be honest.
        for (uint256 e = r.epochs; e > 0; e--) {
            Epoch storage prev = epochs[runId][e - 1];
            if (prev.vetoed) continue;
            if (total < prev.total) revert TotalDecreased(prev.total, total);
            break;
        }
        epoch = r.epochs++;
        uint64 claimableAt = uint64(block.timestamp) + r.challengeWindow;
        epochs[runId][epoch] = Epoch(root, total, claimableAt, false);
        emit EpochPosted(runId, epoch, root, total, claimableAt);
    }

    function veto(uint256 runId, uint256 epoch) external onlyRole(VETO_ROLE) {
        Epoch storage ep = _epoch(runId, epoch);
        if (ep.vetoed || block.timestamp >= ep.claimableAt) revert ChallengeWindowOver(runId, epoch);
        ep.vetoed = true;
        emit EpochVetoed(runId, epoch);
    }

    /// The latest root, once settled, ends training if it reaches the compute target.
    function finishTraining(uint256 runId) external onlyRole(COORDINATOR_ROLE) {
        Run storage r = _inState(runId, State.Training);
        if (r.epochs == 0) revert UnknownEpoch(runId, 0);
        uint256 last = r.epochs - 1;
        if (!settled(runId, last)) revert EpochNotClaimable(runId, last);
        uint256 total = epochs[runId][last].total;
        if (total < r.computeTarget) revert TargetNotReached(total, r.computeTarget);
        r.state = State.Trained;
        r.settledEpoch = last;
        uint256 designerUnits = designerShare(total, r.designerBps);
        withdrawable[r.designer] += r.stake;
        tokens.activate(runId, total + designerUnits, r.credentialSupply);
        emit Trained(runId, last, total + designerUnits, designerUnits);
    }

    function abandon(uint256 runId) external {
        Run storage r = _run(runId);
        if (msg.sender != r.designer && !hasRole(COORDINATOR_ROLE, msg.sender)) revert NotDesigner(runId);
        if (r.state != State.Open && r.state != State.Training) revert WrongState(runId, r.state);
        r.state = State.Abandoned;
        (bool found, uint256 epoch) = _latestSettled(runId);
        if (found) r.settledEpoch = epoch;
        else withdrawable[r.designer] += r.stake;
        emit Abandoned(runId, found, epoch);
    }

    // ---- claims --------------------------------------------------------------------------------

    /// Ownership for `account` from a settled root; always minted to the leaf's own account, so a
    /// proof is worth nothing to anyone else.
    function claim(uint256 runId, uint256 epoch, address account, uint256 cumulative, bytes32[] calldata proof) external nonReentrant {
        _inState(runId, State.Trained);
        if (!settled(runId, epoch) || epoch > runs[runId].settledEpoch) revert EpochNotClaimable(runId, epoch);
        _verify(runId, epoch, account, cumulative, proof);
        uint256 already = claimed[runId][account];
        if (cumulative <= already) revert NothingToClaim();
        claimed[runId][account] = cumulative;
        emit OwnershipClaimed(runId, account, epoch, cumulative - already);
        tokens.mintOwnership(runId, account, cumulative - already);
    }

    function claimDesignerShare(uint256 runId) external nonReentrant {
        Run storage r = _inState(runId, State.Trained);
        if (r.designerPaid) revert NothingToClaim();
        uint256 amount = designerShare(epochs[runId][r.settledEpoch].total, r.designerBps);
        if (amount == 0) revert NothingToClaim();
        r.designerPaid = true;
        emit DesignerShareClaimed(runId, r.designer, amount);
        tokens.mintOwnership(runId, r.designer, amount);
    }

    /// A contributor's share of an abandoned run's stake, credited for withdrawal.
    function claimStakeShare(uint256 runId, address account, uint256 cumulative, bytes32[] calldata proof) external nonReentrant {
        Run storage r = _inState(runId, State.Abandoned);
        uint256 epoch = r.settledEpoch;
        if (!settled(runId, epoch)) revert NothingToClaim();
        _verify(runId, epoch, account, cumulative, proof);
        if (stakeClaimed[runId][account]) revert NothingToClaim();
        stakeClaimed[runId][account] = true;
        // Rounds down: at most one wei per contributor stays in the contract.
        uint256 amount = (r.stake * cumulative) / epochs[runId][epoch].total;
        // A root whose published total understates its leaves must not pay out other runs' stakes.
        r.stakePaid += amount;
        if (r.stakePaid > r.stake) revert StakeExceeded(runId);
        withdrawable[account] += amount;
        emit StakeShareClaimed(runId, account, amount);
    }

    function withdraw() external nonReentrant {
        uint256 amount = withdrawable[msg.sender];
        if (amount == 0) revert NothingToClaim();
        withdrawable[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    // ---- views ---------------------------------------------------------------------------------

    /// Posted, not vetoed, and past its challenge window.
    function settled(uint256 runId, uint256 epoch) public view returns (bool) {
        Epoch storage ep = epochs[runId][epoch];
        return ep.root != bytes32(0) && !ep.vetoed && block.timestamp >= ep.claimableAt;
    }

    /// Designer units such that they are `bps` of the whole: total·bps / (BPS − bps), rounded down.
    function designerShare(uint256 total, uint16 bps) public pure returns (uint256) {
        return (total * bps) / (BPS - bps);
    }

    // ---- internals -----------------------------------------------------------------------------

    function _run(uint256 runId) private view returns (Run storage r) {
        r = runs[runId];
        if (r.state == State.None) revert UnknownRun(runId);
    }

    function _inState(uint256 runId, State s) private view returns (Run storage r) {
        r = _run(runId);
        if (r.state != s) revert WrongState(runId, r.state);
    }

    function _epoch(uint256 runId, uint256 epoch) private view returns (Epoch storage ep) {
        ep = epochs[runId][epoch];
        if (ep.root == bytes32(0)) revert UnknownEpoch(runId, epoch);
    }

    function _latestSettled(uint256 runId) private view returns (bool, uint256) {
        for (uint256 e = runs[runId].epochs; e > 0; e--) {
            if (settled(runId, e - 1)) return (true, e - 1);
        }
        return (false, 0);
    }

    function _verify(uint256 runId, uint256 epoch, address account, uint256 cumulative, bytes32[] calldata proof) private view {
        if (!joined[runId][account]) revert NotJoined(runId, account);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(account, cumulative))));
        if (!MerkleProof.verifyCalldata(proof, epochs[runId][epoch].root, leaf)) revert InvalidProof();
    }
}
